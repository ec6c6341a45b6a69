"""Build a throw-away third-party plugin distribution on disk (a module plus a ``.dist-info``
with an entry point in group ``pycontainerd.plugins``), so tests exercise the real
entry-point loading path of a daemon started with ``PYTHONPATH`` pointing at it."""

from __future__ import annotations

import textwrap
from pathlib import Path


def make_plugin_dist(site: Path, module: str, source: str, entry: str = "registration") -> dict[str, str]:
    """Write ``module.py`` and its dist-info under ``site``; return env vars for the daemon."""
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{module}-0.0.1.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.0.1\n")
    (info / "entry_points.txt").write_text(f"[pycontainerd.plugins]\n{module} = {module}:{entry}\n")
    return {"PYTHONPATH": str(site)}


BROKEN_PLUGIN = """
    from pycontainerd.plugin import Registration

    def init(ic):
        raise RuntimeError("this plugin is broken on purpose")

    registration = Registration(type="io.containerd.internal.v1", id="broken", init=init)
"""

SLOW_VERSION_PLUGIN = """
    import asyncio
    from pycontainerd.plugin import Registration
    from pycontainerd.services.version import VersionServicer

    class Slow(VersionServicer):
        async def Version(self, request, context):
            await asyncio.sleep(float(open(__file__ + ".delay").read()))
            return await super().Version(request, context)

    registration = Registration(type="io.containerd.grpc.v1", id="slow-version", init=lambda ic: Slow())
"""
