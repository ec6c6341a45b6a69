"""Users and groups of a container image, read from its ``/etc/passwd`` and ``/etc/group``.

The files are read *inside* the root filesystem: every path component is opened relative to
a directory descriptor with ``O_NOFOLLOW``, and symbolic links are resolved by hand with the
rootfs as ``/`` (an absolute target restarts at the rootfs, ``..`` stops at it) — the scoping
of containerd's ``fs.RootPath``, done without a window in which a swapped link could lead
out. A hostile image whose ``/etc/passwd`` points at the host's ``/etc/shadow`` therefore
reads the *image's* ``/etc/shadow``, or nothing.

Parsing follows runc's ``libcontainer/user``: blank lines and ``#`` comments are skipped,
numbers that do not parse count as 0, member lists are comma separated.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_SYMLINKS = 255
MAX_FILE_SIZE = 16 << 20
"""Refuse passwd/group files larger than this (a hostile image could ship a huge one)."""


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int
    home: str = ""
    shell: str = ""


@dataclass(frozen=True)
class Group:
    name: str
    gid: int
    members: tuple[str, ...] = field(default_factory=tuple)


def _walk_in_root(root_fd: int, path: str, opened: list[int]) -> str | None:
    """Resolve ``path`` below the directory ``opened[-1]`` (``opened[0]`` is the root),
    pushing each directory descriptor on ``opened``. Returns the last component's name when
    it is not a directory (its parent is ``opened[-1]``), None when the whole path is one."""
    # the walk follows links by hand with the rootfs as '/'
    todo = [p for p in path.split("/") if p not in ("", ".")]
    todo.reverse()  # a stack: the next component is todo[-1]
    links = 0
    while todo:
        name = todo.pop()
        if name == "..":
            if len(opened) > 1:
                os.close(opened.pop())
            continue
        cur = opened[-1]
        fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=cur)
        st = os.fstat(fd)
        if stat.S_ISLNK(st.st_mode):
            os.close(fd)
            links += 1
            if links > MAX_SYMLINKS:
                raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
            target = os.readlink(name, dir_fd=cur)
            if target.startswith("/"):
                while len(opened) > 1:
                    os.close(opened.pop())
            parts = [p for p in target.split("/") if p not in ("", ".")]
            todo.extend(reversed(parts))
            continue
        os.close(fd)
        if stat.S_ISDIR(st.st_mode):
            opened.append(os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=cur))
            continue
        if todo:
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
        return name
    return None


def dir_in_root(root: str, path: str) -> str:
    """The host path of the directory ``path`` resolved with ``root`` as the root directory
    (links followed inside ``root``, never out of it).

    Raises:
        FileNotFoundError: the path does not exist inside ``root``.
        NotADirectoryError: it is not a directory.
    """
    opened = [os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)]
    try:
        if _walk_in_root(opened[0], path, opened) is not None:
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
        return os.readlink(f"/proc/self/fd/{opened[-1]}")
    finally:
        for fd in opened:
            os.close(fd)


def read_in_root(root: str, path: str) -> bytes:
    """The content of ``path`` resolved with ``root`` as the root directory.

    Raises:
        FileNotFoundError: the path (or a link target) does not exist inside ``root``.
        OSError: any other failure, e.g. ``ELOOP`` for link cycles, ``EISDIR``, ``EFBIG``.
    """
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    opened = [root_fd]  # the directory stack; opened[0] is the root
    try:
        name = _walk_in_root(root_fd, path, opened)
        if name is None:
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
        cur = opened[-1]
        st = os.stat(name, dir_fd=cur, follow_symlinks=False)
        if not stat.S_ISREG(st.st_mode):
            code = errno.EISDIR if stat.S_ISDIR(st.st_mode) else errno.EINVAL
            raise OSError(code, f"not a regular file: {os.strerror(code)}", path)
        # O_NOFOLLOW and the regular-file check again: a link swapped in meanwhile fails.
        ffd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=cur)
        try:
            fst = os.fstat(ffd)
            if not stat.S_ISREG(fst.st_mode):
                raise OSError(errno.EINVAL, "not a regular file", path)
            if fst.st_size > MAX_FILE_SIZE:
                raise OSError(errno.EFBIG, os.strerror(errno.EFBIG), path)
            chunks = []
            total = 0
            while chunk := os.read(ffd, 1 << 16):
                total += len(chunk)
                if total > MAX_FILE_SIZE:
                    raise OSError(errno.EFBIG, os.strerror(errno.EFBIG), path)
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(ffd)
    finally:
        for fd in opened:
            os.close(fd)


_INT = re.compile(r"[+-]?[0-9]+")


def _atoi(value: str) -> int:
    """Go's ``strconv.Atoi`` with the error ignored, as runc parses these files."""
    if not _INT.fullmatch(value):
        return 0
    n = int(value)
    return n if -(1 << 63) <= n < (1 << 63) else 0


def _lines(data: bytes):
    for raw in data.decode("utf-8", errors="replace").splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            yield line.split(":")


def parse_passwd(data: bytes) -> list[User]:
    """Entries of a passwd file (``name:pass:uid:gid:gecos:home:shell``)."""
    out = []
    for p in _lines(data):
        p += [""] * (7 - len(p))
        out.append(User(p[0], _atoi(p[2]), _atoi(p[3]), p[5], p[6]))
    return out


def parse_group(data: bytes) -> list[Group]:
    """Entries of a group file (``name:pass:gid:member,member``)."""
    out = []
    for p in _lines(data):
        p += [""] * (4 - len(p))
        members = tuple(m for m in p[3].split(",")) if p[3] else ()
        out.append(Group(p[0], _atoi(p[2]), members))
    return out


def users(root: str, match: Callable[[User], bool] | None = None) -> list[User]:
    """Users of the rootfs at ``root`` (``FileNotFoundError`` when it has no /etc/passwd)."""
    found = parse_passwd(read_in_root(root, "/etc/passwd"))
    return [u for u in found if match is None or match(u)]


def groups(root: str, match: Callable[[Group], bool] | None = None) -> list[Group]:
    """Groups of the rootfs at ``root`` (``FileNotFoundError`` when it has no /etc/group)."""
    found = parse_group(read_in_root(root, "/etc/group"))
    return [g for g in found if match is None or match(g)]
