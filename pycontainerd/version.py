"""Version and revision of this build, as the Version service reports them.

``REVISION`` is the git commit the package was built from when that can be told (an
installed package records it in ``pycontainerd/_revision.txt`` at build time; a source
checkout asks git), else empty — never a made-up value.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from . import __version__

VERSION = __version__

PACKAGE = "pycontainerd"
"""What was built, as ``pycontainerd --version`` names it (containerd prints its Go package
path there): the Python distribution's name."""


def _revision() -> str:
    here = Path(__file__).resolve().parent
    recorded = here / "_revision.txt"
    if recorded.exists():
        return recorded.read_text().strip()
    try:
        out = subprocess.run(
            ["git", "-C", str(here.parent), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


REVISION = _revision()
