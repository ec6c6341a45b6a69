"""A small filesystem test kit (after containerd's ``continuity/fs/fstest``): appliers that
change a tree, and a comparison of two trees.

An applier is ``apply(root)``; :func:`apply` chains several. Modes are set with ``chmod``
after creation, so the process umask never matters. :func:`check_directory_equal`
compares type, permission bits, owner, file content and link target of every entry below
the two roots (not the roots themselves, not times, not link counts).
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

Applier = Callable[[Path], None]


def _path(root: Path, name: str) -> Path:
    return root / name.lstrip("/")


def create_file(name: str, data: bytes, mode: int) -> Applier:
    def fn(root: Path) -> None:
        p = _path(root, name)
        p.write_bytes(data)
        os.chmod(p, mode)

    return fn


def create_dir(name: str, mode: int) -> Applier:
    def fn(root: Path) -> None:
        p = _path(root, name)
        p.mkdir()
        os.chmod(p, mode)

    return fn


def remove_all(name: str) -> Applier:
    def fn(root: Path) -> None:
        p = _path(root, name)
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif os.path.lexists(p):
            p.unlink()

    return fn


def chown(name: str, uid: int, gid: int) -> Applier:
    def fn(root: Path) -> None:
        os.lchown(_path(root, name), uid, gid)

    return fn


def link(old: str, new: str) -> Applier:
    def fn(root: Path) -> None:
        os.link(_path(root, old), _path(root, new))

    return fn


def symlink(target: str, name: str) -> Applier:
    def fn(root: Path) -> None:
        os.symlink(target, _path(root, name))

    return fn


def rename(old: str, new: str) -> Applier:
    def fn(root: Path) -> None:
        os.rename(_path(root, old), _path(root, new))

    return fn


def apply(*appliers: Applier) -> Applier:
    def fn(root: Path) -> None:
        for a in appliers:
            a(root)

    return fn


def describe(root: str | Path) -> dict[str, tuple]:
    """``{relative path: (type, permission bits, uid, gid, content or link target)}``."""
    root = Path(root)
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            if stat.S_ISREG(st.st_mode):
                body: object = p.read_bytes()
            elif stat.S_ISLNK(st.st_mode):
                body = os.readlink(p)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                body = st.st_rdev
            else:
                body = None
            out[str(p.relative_to(root))] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, body)
    return out


def check_directory_equal(expected: str | Path, actual: str | Path) -> None:
    """Raise AssertionError listing every difference between the two trees."""
    a, b = describe(expected), describe(actual)
    problems = []
    for name in sorted(set(a) | set(b)):
        if name not in b:
            problems.append(f"missing {name}")
        elif name not in a:
            problems.append(f"unexpected {name}")
        elif a[name] != b[name]:
            problems.append(f"{name}: expected {a[name]!r}, got {b[name]!r}")
    if problems:
        raise AssertionError(f"{actual} differs from {expected}:\n  " + "\n  ".join(problems))
