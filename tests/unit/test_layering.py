"""DESIGN §2: dependencies flow one way — the core never imports grpc. The gRPC layer
(wire, services), the clients (client, cli, cri, testing) and the generated code may. The
client library stands on the wire layer and the plain records, never on the servicers or
the LMDB stores."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "pycontainerd"
GRPC_ALLOWED = {"api", "wire", "services", "client", "cli", "cri", "testing.py"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


def test_core_modules_do_not_import_grpc():
    offenders = []
    for path in PKG.rglob("*.py"):
        top = path.relative_to(PKG).parts[0]
        if top in GRPC_ALLOWED:
            continue
        if {"grpc", "grpc_health", "grpc_reflection"} & _imports(path):
            offenders.append(str(path.relative_to(PKG)))
    assert offenders == []


def test_the_shim_stays_light():
    """The shim is a process per container: no grpc, asyncio, structlog or protobuf
    (``google``) in its modules, nor in the ttrpc modules it uses (only ``ttrpc/aio.py``,
    the daemon's side, uses asyncio); tests/unit/test_shim_imports.py checks what loads."""
    offenders = []
    heavy_names = {"grpc", "asyncio", "structlog", "google"}
    for path in [*(PKG / "shim").rglob("*.py"), *(PKG / "ttrpc").rglob("*.py")]:
        heavy = heavy_names & _imports(path)
        if path.name == "aio.py" and path.parent.name == "ttrpc":
            heavy -= {"asyncio"}
        if heavy:
            offenders.append((path.name, sorted(heavy)))
    assert offenders == []


def test_the_client_loads_neither_lmdb_nor_the_servicers():
    """``import pycontainerd.client`` in a fresh interpreter: no ``lmdb``, no LMDB store
    (``pycontainerd.metadata``), no servicer (``pycontainerd.services``)."""
    code = "import sys, pycontainerd.client\nprint(' '.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    mods = set(out.stdout.split())
    assert "pycontainerd.client.client" in mods and "pycontainerd.wire.records" in mods
    bad = sorted(m for m in mods if m == "lmdb" or m.startswith(("lmdb.", "pycontainerd.metadata", "pycontainerd.services")))
    assert bad == []


def test_client_cri_and_runtime_do_not_import_the_servicers():
    offenders = []
    for top in ("client", "cri", "runtime"):
        for path in (PKG / top).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.ImportFrom) and node.module:
                    resolved = _resolve(path, node)
                    if resolved.startswith("pycontainerd.services"):
                        offenders.append((str(path.relative_to(PKG)), resolved))
    assert offenders == []


def _resolve(path: Path, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    package = list(path.relative_to(PKG.parent).with_suffix("").parts[:-1])
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, node.module or ""])


def test_snapshots_do_not_import_metadata():
    """The snapshotters' own store stands on pycontainerd.lmdb_env, not on the metadata
    database: metadata imports snapshots, never the other way round."""
    offenders = []
    for path in (PKG / "snapshots").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module is not None:
                if _resolve(path, node).startswith("pycontainerd.metadata"):
                    offenders.append(str(path.relative_to(PKG)))
    assert offenders == []
