"""How the shim and its zygote are started: a lean interpreter, ``python -S -P`` (no ``site``,
no ``.pth`` hooks, no script directory on the path), with only pycontainerd's folder on
``PYTHONPATH`` (:func:`python_path`), so the shim carries no third-party import. Shared by
the daemon (:mod:`pycontainerd.runtime`), which starts them, and the shim, which starts its
long-lived self, without either importing the other's modules.
"""

from __future__ import annotations

import os
import sys

SHIM_MAIN = "pycontainerd.shim.main"
ZYGOTE_MAIN = "pycontainerd.shim.zygote"
ZYGOTE_MAX_MESSAGE = 1 << 20
"""Bytes a message between the daemon and the shim zygote may have (each way)."""


def command(module: str, *args: str) -> list[str]:
    """``python -S -P -c "from <module> import main; main()" <args>``."""
    return [sys.executable, "-S", "-P", "-c", f"from {module} import main; main()", *args]


def shim_command() -> list[str]:
    """The shim binary as the daemon runs it (``start`` then forks the long-lived shim)."""
    return command(SHIM_MAIN)


def zygote_command(fd: int) -> list[str]:
    """The shim zygote, talking to the daemon over the socket ``fd``."""
    return command(ZYGOTE_MAIN, "-fd", str(fd))


def python_path() -> str:
    """Where this interpreter found pycontainerd: the ``PYTHONPATH`` of a ``python -S`` shim.

    Nothing else: the shim needs only the standard library (no ``google.protobuf``, see
    :mod:`pycontainerd.shim.proto`), so an import of anything else fails in the shim.
    """
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
