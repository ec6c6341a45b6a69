"""DESIGN §2 on the code's own imports (issue 16's done criteria).

- no hand-written module over 700 lines (the generated ``pycontainerd/api`` and the
  unasync-generated ``pycontainerd/client/_sync`` aside);
- no circle of imports between modules of ``pycontainerd/``, typing-only and function-level
  imports included;
- no import runs from a lower layer to a higher one: ``cmd → plugins → {server, services,
  cri} → wire → core``, the client (and the tools on it) beside the servicers on ``wire``,
  the shim beside the core, both on ttrpc and the lean stdlib-only modules;
- the core never imports grpc, and the shim stays light.

The layers are data: :data:`LAYER_OF` says where a module lives, :data:`MAY_IMPORT` which
layers a layer may use directly (the rest follows transitively). What main still does
against them is listed, exactly, in :data:`KNOWN_VIOLATIONS`: a new violation fails, and so
does one that is fixed but still listed (remove it from the set).
"""

from __future__ import annotations

import ast
import functools
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PKG = REPO / "pycontainerd"
GRPC_ALLOWED = {"api", "services", "server", "client", "cli", "cri", "wire", "testing.py"}

MAX_LINES = 700
GENERATED = ("pycontainerd/api/", "pycontainerd/client/_sync/")
"""Generated code: from ``api/`` by the protobuf compiler, and the sync client by unasync."""

# --- the layers -----------------------------------------------------------------------------

LAYER_OF = {
    # module or package: layer; the longest prefix wins ("pycontainerd" alone names only the
    # package's __init__), anything else in pycontainerd/ is "core"
    "cmd": "cmd",
    "plugins": "plugins",
    "pycontainerd.cli": "tools",
    "pycontainerd.admin": "tools",
    "pycontainerd.testing": "tools",
    "pycontainerd.server": "server",
    "pycontainerd.services": "services",
    "pycontainerd.cri": "cri",
    "pycontainerd.client": "client",
    "pycontainerd.wire": "wire",
    # the task runtime speaks protobuf to its shims (mounts, options): it stands on wire
    "pycontainerd.runtime": "runtime",
    "pycontainerd.tasks": "runtime",
    "pycontainerd.shim": "shim",
    "pycontainerd.ttrpc": "ttrpc",
    "pycontainerd.api": "api",
    "pycontainerd": "lean",  # the package's __init__ (the version string)
    "pycontainerd.version": "lean",
    "pycontainerd.errdefs": "lean",
    "pycontainerd.identifiers": "lean",
    "pycontainerd.sysutil": "lean",  # stdlib-only code the shim and the core share
}
DEFAULT_LAYER = "core"

MAY_IMPORT = {
    # layer: the layers below it that it may import directly (its own layer always)
    "cmd": {"plugins", "tools", "shim"},
    "plugins": {"server", "services", "cri", "runtime"},
    "tools": {"client"},
    "server": {"wire"},
    "services": {"wire", "runtime"},
    "cri": {"wire", "runtime"},
    "runtime": {"wire"},
    "client": {"wire"},
    "wire": {"core"},
    "core": {"ttrpc", "lean", "api"},
    "shim": {"ttrpc", "lean", "api"},
    "ttrpc": {"lean", "api"},
    "lean": set(),
    "api": set(),
}

KNOWN_VIOLATIONS: set[str] = set()
"""What main still does against the rules, each entry one module (``size: <path>``), one
circle of modules (``cycle: <members, sorted>``) or one import (``layer: <importer> ->
<imported>``). Empty: issue 16 fixed every one; keep it so."""


# --- the module graph -----------------------------------------------------------------------


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@functools.cache
def _modules() -> dict[str, Path]:
    """Every hand-written module of pycontainerd/, plugins/ and cmd/ by dotted name."""
    out = {}
    for top in ("pycontainerd", "plugins", "cmd"):
        for path in sorted((REPO / top).rglob("*.py")):
            if not str(path.relative_to(REPO)).startswith("pycontainerd/api/"):
                out[_module_name(path)] = path
    return out


def _known(name: str) -> str | None:
    """``name`` or the closest module it is inside of (``pkg.mod.attr`` → ``pkg.mod``);
    anything under ``pycontainerd.api`` is the one node ``pycontainerd.api``."""
    if name == "pycontainerd.api" or name.startswith("pycontainerd.api."):
        return "pycontainerd.api"
    modules = _modules()
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _imported(module: str, path: Path) -> Iterator[str]:
    """The modules ``module`` names in any import statement (module level or not, under
    ``TYPE_CHECKING`` or not); ``from pkg import sub`` counts as an import of ``pkg.sub``
    when that is a module, else of ``pkg``. Outside modules are left out."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            names = []
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                names.append(sub if _known(sub) == sub else source)
        else:
            continue
        for name in names:
            found = _known(name)
            if found is not None and found != module:
                yield found


@functools.cache
def _graph() -> dict[str, frozenset[str]]:
    return {m: frozenset(_imported(m, p)) for m, p in _modules().items()}


def _strongly_connected(graph: dict[str, frozenset[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; the components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def _layer(module: str) -> str:
    name = module
    while name:
        if name in LAYER_OF and (name != "pycontainerd" or name == module):
            return LAYER_OF[name]
        name = name.rpartition(".")[0]
    return DEFAULT_LAYER


@functools.cache
def _allowed(layer: str) -> frozenset[str]:
    """``layer`` and every layer it reaches through :data:`MAY_IMPORT`."""
    out = {layer}
    for below in MAY_IMPORT[layer]:
        out |= _allowed(below)
    return frozenset(out)


def _known_of(kind: str) -> set[str]:
    return {v for v in KNOWN_VIOLATIONS if v.startswith(f"{kind}: ")}


# --- the checks -----------------------------------------------------------------------------


def test_no_hand_written_module_is_over_700_lines():
    found = set()
    for path in sorted(PKG.rglob("*.py")):
        rel = str(path.relative_to(REPO))
        if not rel.startswith(GENERATED) and len(path.read_text().splitlines()) > MAX_LINES:
            found.add(f"size: {rel}")
    assert found == _known_of("size"), "new: %s; fixed (remove from KNOWN_VIOLATIONS): %s" % (
        sorted(found - _known_of("size")), sorted(_known_of("size") - found))


def test_no_import_cycles():
    graph = {m: deps for m, deps in _graph().items() if m.startswith("pycontainerd")}
    found = {"cycle: " + ", ".join(c) for c in _strongly_connected(graph)}
    assert found == _known_of("cycle"), "new: %s; fixed (remove from KNOWN_VIOLATIONS): %s" % (
        sorted(found - _known_of("cycle")), sorted(_known_of("cycle") - found))


def test_imports_run_down_the_layers():
    assert set(LAYER_OF.values()) | {DEFAULT_LAYER} <= set(MAY_IMPORT)
    found = set()
    for module, deps in _graph().items():
        allowed = _allowed(_layer(module))
        for dep in deps:
            if _layer(dep) not in allowed:
                found.add(f"layer: {module} -> {dep}")
    assert found == _known_of("layer"), "new: %s; fixed (remove from KNOWN_VIOLATIONS): %s" % (
        sorted(found - _known_of("layer")), sorted(_known_of("layer") - found))


def test_the_layering_checks_see_real_imports():
    """The graph is not vacuous: known imports of each kind are in it."""
    graph = _graph()
    assert "pycontainerd.errdefs" in graph["pycontainerd.content.local"]  # from ..errdefs import
    assert "pycontainerd.content.ingest" in graph["pycontainerd.content.local"]  # from .ingest import
    assert "pycontainerd.oci.seccomp" in graph["pycontainerd.oci.opts.linux"]  # from .. import seccomp
    assert "pycontainerd.api" in graph["pycontainerd.runtime.task"]  # generated code is one node
    assert _strongly_connected({"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset({"a"}),
                                "d": frozenset({"a"})}) == [["a", "b", "c"]]
    assert _layer("pycontainerd.cri.server.sandbox_run") == "cri"
    assert _layer("pycontainerd.content.local") == "core"
    assert "core" in _allowed("cmd") and "services" not in _allowed("client")


# --- what loads -----------------------------------------------------------------------------


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


def test_the_client_loads_neither_lmdb_nor_the_servicers():
    """The client library (its package exports load lazily, and so do the client's services
    and stores: take the clients and every part they load on first use) in a fresh
    interpreter: no ``lmdb``, no LMDB store (``pycontainerd.metadata``), no servicer
    (``pycontainerd.services``)."""
    parts = [f"client.{p}" for p in ("containers", "content", "images", "snapshots", "tasks", "cio")]
    parts += [f"wire.records.{p}" for p in ("containers", "images", "leases", "namespaces")]
    code = ("import sys\nfrom pycontainerd.client import AsyncClient, Client\n"
            + "".join(f"import pycontainerd.{p}\n" for p in parts) + "print(' '.join(sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    mods = set(out.stdout.split())
    assert "pycontainerd.client.client" in mods and "pycontainerd.wire.records" in mods
    bad = sorted(m for m in mods if m == "lmdb" or m.startswith(("lmdb.", "pycontainerd.metadata", "pycontainerd.services")))
    assert bad == []


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


def _dotted(path: Path) -> str:
    parts = ("pycontainerd", *path.relative_to(PKG).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _full_imports(path: Path) -> set[str]:
    """Every module ``path`` imports, relative imports resolved (``from . import x`` gives
    ``package.x``: a submodule or a name, either way inside the package)."""
    package = _dotted(path) if path.name == "__init__.py" else _dotted(path).rpartition(".")[0]
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
