"""DESIGN §2: dependencies flow one way — the core never imports grpc. The gRPC layer
(server, services), the clients (client, cli, cri, testing) and the generated code may."""

from __future__ import annotations

import ast
import sys
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
    (``google``) in its modules, nor in the sysutil and ttrpc modules it uses (only ``ttrpc/aio.py``,
    the daemon's side, uses asyncio); tests/unit/test_shim_imports.py checks what loads."""
    offenders = []
    heavy_names = {"grpc", "asyncio", "structlog", "google"}
    for path in [*(PKG / "shim").rglob("*.py"), *(PKG / "ttrpc").rglob("*.py"), *(PKG / "sysutil").rglob("*.py")]:
        heavy = heavy_names & _imports(path)
        if path.name == "aio.py" and path.parent.name == "ttrpc":
            heavy -= {"asyncio"}
        if heavy:
            offenders.append((path.name, sorted(heavy)))
    assert offenders == []


def _module_name(path: Path) -> str:
    parts = ("pycontainerd", *path.relative_to(PKG).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _full_imports(path: Path) -> set[str]:
    """Every module ``path`` imports, relative imports resolved (``from . import x`` gives
    ``package.x``: a submodule or a name, either way inside the package)."""
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            base = base[:len(base) - node.level + 1] if node.level else []
            module = ".".join([*base, node.module] if node.module else base)
            for alias in node.names:  # a submodule when there is one, else the module of the name
                sub = f"{module}.{alias.name}"
                rel = Path(*sub.split(".")[1:])
                is_module = (PKG / rel).is_dir() or (PKG / rel).with_suffix(".py").is_file()
                out.add(sub if is_module or not node.module else module)
    return out


LEAN = ("pycontainerd.sysutil", "pycontainerd.errdefs")


def _outside(imports: set[str], allowed: tuple[str, ...]) -> list[str]:
    return sorted(m for m in imports if m.split(".")[0] not in sys.stdlib_module_names
                  and not any(m == a or m.startswith(a + ".") for a in allowed))


def test_sysutil_imports_only_the_standard_library():
    """DESIGN §2: the package the shim and the core share stays lean — the standard library,
    itself and errdefs (which imports only the standard library)."""
    offenders = {}
    for path in [*(PKG / "sysutil").rglob("*.py"), PKG / "errdefs.py"]:
        allowed = LEAN if path.parent.name == "sysutil" else ()
        bad = _outside(_full_imports(path), allowed)
        if bad:
            offenders[str(path.relative_to(PKG))] = bad
    assert offenders == {}


def test_the_shim_imports_only_the_lean_layers():
    """The shim is built from sysutil, ttrpc's blocking side, errdefs and identifiers (both
    standard-library only); nothing of the daemon's (metadata, runtime, …) reaches it."""
    allowed = (*LEAN, "pycontainerd.identifiers", "pycontainerd.shim", "pycontainerd.ttrpc.server", "pycontainerd.ttrpc.client",
               "pycontainerd.ttrpc.reactor", "pycontainerd.ttrpc.wire")
    offenders = {}
    for path in [*(PKG / "shim").rglob("*.py"), *(PKG / "ttrpc").glob("[!a]*.py")]:
        bad = _outside(_full_imports(path), allowed)
        if bad:
            offenders[str(path.relative_to(PKG))] = bad
    assert offenders == {}


def test_the_core_does_not_import_the_shim():
    """The core shares code with the shim through sysutil only: it runs the shim as a
    process, never imports its modules (the CRI's stats still read the shim's cgroup code)."""
    offenders = []
    for path in PKG.rglob("*.py"):
        top = path.relative_to(PKG).parts[0]
        if top in ("shim", "cri"):
            continue
        if any(m == "pycontainerd.shim" or m.startswith("pycontainerd.shim.") for m in _full_imports(path)):
            offenders.append(str(path.relative_to(PKG)))
    assert offenders == []
