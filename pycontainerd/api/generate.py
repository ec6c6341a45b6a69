"""Regenerate the Python bindings in ``pycontainerd/api`` from the ``.proto`` files in ``api/``.

Usage::

    python -m pycontainerd.api.generate           # rewrite the generated tree
    python -m pycontainerd.api.generate --check   # exit 1 if the committed tree has drifted

The generated tree mirrors ``api/``: ``api/services/version/v1/version.proto`` becomes
``pycontainerd/api/services/version/v1/version_pb2.py`` (+ ``.pyi`` and, for files that
declare services, ``version_pb2_grpc.py``). protoc writes imports of sibling files as
``from types import mount_pb2``, which would resolve to the stdlib ``types`` module, so every
import of one of our own files is rewritten to its absolute ``pycontainerd.api`` path.
``google/rpc/status.proto`` comes from the ``googleapis-common-protos`` package and is imported
from there (``google.rpc.status_pb2``), never generated here.

The output depends on the grpcio-tools version (its protoc stamps its version into every
file), so regenerate with the version the tree was generated with.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

PACKAGE = "pycontainerd.api"
OUT_DIR = Path(__file__).resolve().parent
REPO_ROOT = OUT_DIR.parent.parent
API_DIR = REPO_ROOT / "api"

# Files under OUT_DIR that are hand-written and never touched by the generator.
HANDWRITTEN = frozenset({"generate.py"})

ROOT_INIT = (
    '"""Python bindings for containerd\'s wire API, generated from api/ by '
    '`python -m pycontainerd.api.generate` (everything here but generate.py)."""\n'
)


def proto_files(api_dir: Path = API_DIR) -> list[str]:
    """All .proto files under api_dir, as sorted '/'-separated relative paths."""
    return sorted(p.relative_to(api_dir).as_posix() for p in api_dir.rglob("*.proto"))


def _include_dirs() -> list[str]:
    import grpc_tools

    grpc_include = Path(grpc_tools.__file__).resolve().parent / "_proto"
    try:
        from google.rpc import status_pb2  # googleapis-common-protos
    except ImportError as exc:  # pragma: no cover - environment problem
        raise SystemExit("googleapis-common-protos is required (pip install googleapis-common-protos)") from exc
    # .../site-packages/google/rpc/status_pb2.py -> .../site-packages
    googleapis_include = Path(status_pb2.__file__).resolve().parent.parent.parent
    if not (googleapis_include / "google" / "rpc" / "status.proto").is_file():  # pragma: no cover
        raise SystemExit(f"google/rpc/status.proto not found under {googleapis_include}")
    # Our own files first, then protobuf's well-known types, then googleapis.
    return [str(API_DIR), str(grpc_include), str(googleapis_include)]


def _rewrite_imports(text: str, own_modules: set[tuple[str, str]]) -> str:
    """Rewrite `from a.b import c_pb2` to `from pycontainerd.api.a.b import c_pb2` for our files."""

    def repl(m: re.Match[str]) -> str:
        pkg, mod = m.group(2), m.group(3)
        if (pkg, mod) in own_modules:
            return f"{m.group(1)}from {PACKAGE}.{pkg} import {mod}"
        return m.group(0)

    text = re.sub(r"^(\s*)from ([\w.]+) import (\w+_pb2)\b", repl, text, flags=re.MULTILINE)

    # The module name handed to the protobuf builder becomes each message class' __module__.
    def repl_builder(m: re.Match[str]) -> str:
        dotted = m.group(2)
        pkg, _, mod = dotted.rpartition(".")
        if (pkg, mod) in own_modules:
            return f"{m.group(1)}'{PACKAGE}.{dotted}'"
        return m.group(0)

    return re.sub(r"(BuildTopDescriptorsAndMessages\(DESCRIPTOR, )'([\w.]+)'", repl_builder, text)


def generate(out_dir: Path) -> list[Path]:
    """Generate the full tree into out_dir (which must exist); return the files written, relative."""
    from grpc_tools import protoc

    protos = proto_files()
    if not protos:
        raise SystemExit(f"no .proto files under {API_DIR}")
    with tempfile.TemporaryDirectory(prefix="pycontainerd-protoc-") as raw:
        args = ["grpc_tools.protoc"]
        args += [f"-I{d}" for d in _include_dirs()]
        args += [f"--python_out={raw}", f"--pyi_out={raw}", f"--grpc_python_out={raw}"]
        args += protos
        rc = protoc.main(args)
        if rc != 0:
            raise SystemExit(f"protoc failed with exit code {rc}")

        own_modules: set[tuple[str, str]] = set()
        for proto in protos:
            d, _, name = proto.rpartition("/")
            own_modules.add((d.replace("/", "."), name[: -len(".proto")] + "_pb2"))

        written: list[Path] = []
        raw_root = Path(raw)
        for src in sorted(raw_root.rglob("*"), key=lambda p: p.as_posix()):
            if not src.is_file():
                continue
            rel = src.relative_to(raw_root)
            text = src.read_text(encoding="utf-8")
            # protoc emits a *_pb2_grpc.py for every input; keep only those with services.
            if rel.name.endswith("_pb2_grpc.py") and "\nclass " not in text:
                continue
            dst = out_dir / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_text(_rewrite_imports(text, own_modules), encoding="utf-8")
            written.append(rel)

    # Every directory in the tree is a package.
    dirs = {Path(".")}
    for rel in written:
        for parent in rel.parents:
            dirs.add(parent)
    for d in sorted(dirs, key=lambda p: p.as_posix()):
        init = out_dir / d / "__init__.py"
        init.parent.mkdir(parents=True, exist_ok=True)
        init.write_text(ROOT_INIT if d == Path(".") else "", encoding="utf-8")
        written.append(d / "__init__.py")
    return sorted(written, key=lambda p: p.as_posix())


def managed_files(root: Path) -> set[str]:
    """Generated files currently under root ('/'-separated, relative): every .py/.pyi except hand-written ones."""
    found = set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for f in filenames:
            rel = (Path(dirpath) / f).relative_to(root).as_posix()
            if rel in HANDWRITTEN or not (f.endswith(".py") or f.endswith(".pyi")):
                continue
            found.add(rel)
    return found


def check(out_dir: Path = OUT_DIR) -> list[str]:
    """Regenerate into a temp dir and compare with out_dir; return the drifted files (empty = clean)."""
    with tempfile.TemporaryDirectory(prefix="pycontainerd-api-check-") as tmp:
        fresh = Path(tmp)
        generate(fresh)
        want = managed_files(fresh)
        have = managed_files(out_dir)
        drift = []
        for rel in sorted(want | have):
            if rel not in have:
                drift.append(f"missing: {rel}")
            elif rel not in want:
                drift.append(f"stale: {rel}")
            elif not filecmp.cmp(fresh / rel, out_dir / rel, shallow=False):
                drift.append(f"differs: {rel}")
        return drift


def version_hint(out_dir: Path = OUT_DIR) -> str | None:
    """Explain drift caused by a grpcio-tools version other than the one the tree was made with."""
    from importlib.metadata import version

    installed = version("grpcio-tools")
    for f in sorted(out_dir.rglob("*_pb2_grpc.py")):
        m = re.search(r"^GRPC_GENERATED_VERSION = '([^']+)'", f.read_text(encoding="utf-8"), re.MULTILINE)
        if m and m.group(1) != installed:
            return f"note: the tree was generated with grpcio-tools {m.group(1)}, this is grpcio-tools {installed}"
        if m:
            return None
    return None


def write(out_dir: Path = OUT_DIR) -> list[str]:
    """Regenerate out_dir in place, removing generated files that no longer have a source."""
    with tempfile.TemporaryDirectory(prefix="pycontainerd-api-gen-") as tmp:
        fresh = Path(tmp)
        generate(fresh)
        want = managed_files(fresh)
        for rel in sorted(managed_files(out_dir) - want):
            (out_dir / rel).unlink()
        for rel in sorted(want):
            dst = out_dir / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(fresh / rel, dst)
        # Drop directories left empty by removals (ignoring bytecode caches).
        for dirpath, _dirnames, _filenames in sorted(os.walk(out_dir), key=lambda t: -len(t[0])):
            p = Path(dirpath)
            if p == out_dir:
                continue
            entries = [e for e in p.iterdir() if e.name != "__pycache__"]
            if not entries:
                shutil.rmtree(p)
        return sorted(want)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pycontainerd.api.generate", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed tree instead of writing; exit 1 on drift")
    opts = parser.parse_args(argv)
    if opts.check:
        drift = check()
        if drift:
            print("generated API code has drifted from api/ (run `python -m pycontainerd.api.generate`):")
            for line in drift:
                print(f"  {line}")
            hint = version_hint()
            if hint:
                print(hint)
            return 1
        print("pycontainerd/api is up to date")
        return 0
    files = write()
    print(f"generated {len(files)} files into {OUT_DIR.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
