"""The shim stays small: everything it loads to serve a task imports no grpc, no asyncio
and no structlog (ANCHORS: grpcio alone is ~20 MiB, asyncio ~8 MiB per shim)."""

from __future__ import annotations

import os
import subprocess
import sys

from pycontainerd.shim.main import _python_path

SERVE_MODULES = [
    "pycontainerd.shim.main", "pycontainerd.shim.service", "pycontainerd.shim.events",
    "pycontainerd.shim.stdio", "pycontainerd.shim.cgroups", "pycontainerd.shim.runc",
    "pycontainerd.ttrpc.server", "pycontainerd.ttrpc.client", "pycontainerd.mount",
]


def test_shim_imports_no_grpc_asyncio_or_structlog() -> None:
    code = (f"import sys\nfor m in {SERVE_MODULES!r}: __import__(m)\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('grpc', 'asyncio', 'structlog'))\n"
            "print(','.join(bad))\n")
    # exactly how `shim start` runs the long-lived shim: python -S -P with an explicit path
    out = subprocess.run([sys.executable, "-S", "-P", "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": _python_path()})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
