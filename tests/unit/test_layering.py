"""DESIGN §2: dependencies flow one way — the core never imports grpc. The gRPC layer
(server, services), the clients (client, cli, cri, testing) and the generated code may."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "pycontainerd"
GRPC_ALLOWED = {"api", "server", "services", "client", "cli", "cri", "testing.py"}


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
