"""The shim stays small: everything it loads to serve a task — the zygote's preload, the
binary's ``main`` and the task service — imports no google.* (protobuf: ~5 MiB per shim,
the shim has its own codec), grpc, asyncio or structlog, nor the stdlib modules it was
rid of (subprocess, dataclasses, inspect, typing: ~1-3 MiB each), measured in a fresh
``python -S -P`` exactly as the daemon starts the shim zygote."""

from __future__ import annotations

import os
import subprocess
import sys

from pycontainerd.sysutil.lean import python_path as _python_path
from pycontainerd.shim.zygote import PRELOAD

FORBIDDEN = ("google", "grpc", "asyncio", "structlog", "subprocess", "dataclasses", "inspect", "typing")


def _site_packages() -> str:
    import google.protobuf

    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(google.protobuf.__file__))))


def _loaded(code: str, path: str) -> set[str]:
    out = subprocess.run([sys.executable, "-S", "-P", "-c", code + "\nimport sys\nprint(' '.join(sys.modules))"],
                         capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": path})
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split())


def test_the_shim_loads_no_protobuf_grpc_asyncio_structlog_or_heavy_stdlib() -> None:
    code = "\n".join(["import pycontainerd.shim.main, pycontainerd.shim.service, pycontainerd.shim.zygote",
                      f"for m in {list(PRELOAD)!r}: __import__(m)"])
    # site-packages on the path too: a stray import would load (and be listed), not just fail
    mods = _loaded(code, os.pathsep.join([_python_path(), _site_packages()]))
    assert {"pycontainerd.shim.service", "pycontainerd.ttrpc.server", "pycontainerd.sysutil.mounts"} <= mods
    bad = sorted(m for m in mods if m.split(".")[0] in FORBIDDEN)
    assert bad == []


def test_the_shim_path_holds_only_pycontainerd() -> None:
    """What the daemon puts on the shim's PYTHONPATH: nothing but the standard library and
    pycontainerd can be imported there."""
    path = _python_path()
    assert os.path.isdir(os.path.join(path, "pycontainerd"))
    out = subprocess.run([sys.executable, "-S", "-P", "-c", "import google.protobuf"], capture_output=True,
                         text=True, timeout=60, env={**os.environ, "PYTHONPATH": path})
    assert out.returncode != 0 and "No module named 'google'" in out.stderr
