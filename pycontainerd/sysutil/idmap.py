"""Id-mapped overlay layers (Linux 5.19+), as containerd 2's mount package makes them for a
snapshot of a pod with its own user namespace.

An overlay mount whose options carry ``uidmap=<ctr>:<host>:<size>`` and
``gidmap=<ctr>:<host>:<size>`` (the overlay snapshotter adds them from the snapshot's
``containerd.io/snapshot/uidmapping`` / ``gidmapping`` labels) gets each lower layer as an
id-mapped clone: ``open_tree(OPEN_TREE_CLONE)``, ``mount_setattr(MOUNT_ATTR_IDMAP)`` with a
user namespace holding the mapping, ``move_mount`` onto a temporary directory. The overlay is
mounted on those clones, which are then detached at once (overlayfs keeps private
references to its layers), so nothing is left mounted but the overlay itself. A file the
image gives to root is then owned by the container's root, with no copy of the layers.

The user namespace comes from a forked child that unshares one and waits while its maps are
written; the child is gone before :func:`mount_overlay` returns. No ``dataclasses`` here
(imported by every shim).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
from collections.abc import Callable

from . import libc

SYS_OPEN_TREE, SYS_MOVE_MOUNT, SYS_MOUNT_SETATTR = 428, 429, 442  # shared numbers on every architecture
AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
OPEN_TREE_CLONE = 1
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOUNT_ATTR_IDMAP = 0x100000
CLONE_NEWUSER = 0x10000000
MNT_DETACH = 2
MAP_OPTIONS = ("uidmap", "gidmap")


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


_syscall = libc.syscall


def parse_map(text: str) -> list[tuple[int, int, int]]:
    """``"0:1000:65536"`` (several separated by spaces) as ``[(container, host, size)]``.
    Raises :class:`ValueError` for anything else."""
    out = []
    for part in text.split():
        ctr, host, size = (int(x) for x in part.split(":"))
        if min(ctr, host) < 0 or size < 1:
            raise ValueError(f"invalid id mapping {part!r}")
        out.append((ctr, host, size))
    if not out:
        raise ValueError("empty id mapping")
    return out


def root_id(maps: list[tuple[int, int, int]]) -> int:
    """The host id of container id 0. Raises :class:`ValueError` when 0 is not mapped."""
    for ctr, host, size in maps:
        if ctr <= 0 < ctr + size:
            return host - ctr
    raise ValueError("container id 0 is not mapped")


def split_maps(data: str) -> tuple[str, dict[str, str]]:
    """The overlay data string without its ``uidmap=``/``gidmap=`` words, and those words."""
    keep, maps = [], {}
    for word in data.split(",") if data else []:
        key, _, value = word.partition("=")
        if key in MAP_OPTIONS:
            maps[key] = value
        else:
            keep.append(word)
    return ",".join(keep), maps


def _check(ret: int, what: str) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


def userns_fd(uids: list[tuple[int, int, int]], gids: list[tuple[int, int, int]]) -> int:
    """An fd of a new user namespace with these maps (the caller closes it)."""
    go_r, go_w = os.pipe()
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(go_w)
            os.close(ready_r)
            os.write(ready_w, b"0" if libc.unshare(CLONE_NEWUSER) == 0 else b"1")
            os.read(go_r, 1)
        finally:
            os._exit(0)
    os.close(go_r)
    os.close(ready_w)
    try:
        if os.read(ready_r, 1) != b"0":
            raise OSError(errno.EPERM, "unshare(CLONE_NEWUSER) failed: no user namespace for the id-mapped layers")
        for name, maps in (("uid_map", uids), ("gid_map", gids)):
            with open(f"/proc/{pid}/{name}", "w") as f:
                f.write("".join(f"{c} {h} {s}\n" for c, h, s in maps))
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(go_w)
        os.close(ready_r)
        with contextlib.suppress(ChildProcessError):  # a reaper of the caller's may have had it
            os.waitpid(pid, 0)


def _idmapped_tree(path: str, ns_fd: int) -> int:
    """An fd of a detached id-mapped clone of the directory ``path`` (the caller closes it)."""
    tree = _check(_syscall(ctypes.c_long(SYS_OPEN_TREE), ctypes.c_int(AT_FDCWD), ctypes.c_char_p(path.encode()),
                           ctypes.c_uint(OPEN_TREE_CLONE | os.O_CLOEXEC)), f"open_tree {path}")
    try:
        attr = _MountAttr(attr_set=MOUNT_ATTR_IDMAP, userns_fd=ns_fd)
        _check(_syscall(ctypes.c_long(SYS_MOUNT_SETATTR), ctypes.c_int(tree), ctypes.c_char_p(b""),
                        ctypes.c_uint(AT_EMPTY_PATH), ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr))),
               f"mount_setattr(MOUNT_ATTR_IDMAP) {path}")
    except BaseException:
        os.close(tree)
        raise
    return tree


def supported(path: str) -> bool:
    """Whether the filesystem of ``path`` can be id-mapped here (critest's own probe: a
    detached clone given an arbitrary mapping)."""
    try:
        ns_fd = userns_fd([(0, 65536, 65536)], [(0, 65536, 65536)])
    except OSError:
        return False
    try:
        os.close(_idmapped_tree(path, ns_fd))
        return True
    except OSError:
        return False
    finally:
        os.close(ns_fd)


def _idmapped_clone(path: str, ns_fd: int, target: str) -> None:
    """An id-mapped clone of the directory ``path`` mounted on ``target``."""
    tree = _idmapped_tree(path, ns_fd)
    try:
        _check(_syscall(ctypes.c_long(SYS_MOVE_MOUNT), ctypes.c_int(tree), ctypes.c_char_p(b""),
                        ctypes.c_int(AT_FDCWD), ctypes.c_char_p(target.encode()),
                        ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH)), f"move_mount {path}")
    finally:
        os.close(tree)


def mount_overlay(data: str, maps: dict[str, str], target: str, do_mount: Callable[[str], None]) -> None:
    """Mount an overlay (``data`` without the map words) on ``target`` over id-mapped clones
    of its lower layers; ``do_mount(data)`` does the overlay mount itself. Raises
    :class:`ValueError` for a bad map, :class:`OSError` when the kernel refuses."""
    uids = parse_map(maps.get("uidmap") or maps.get("gidmap", ""))
    gids = parse_map(maps.get("gidmap") or maps.get("uidmap", ""))
    words = data.split(",")
    index = next((i for i, w in enumerate(words) if w.startswith("lowerdir=")), None)
    if index is None:
        do_mount(data)
        return
    lowers = words[index].partition("=")[2].split(":")
    tmp = os.path.join(os.path.dirname(os.path.abspath(target)), f".idmap-{os.getpid()}-{os.urandom(4).hex()}")
    os.mkdir(tmp, 0o700)  # no tempfile: it pulls shutil and random into every shim
    made: list[str] = []
    ns_fd = userns_fd(uids, gids)
    try:
        for i, lower in enumerate(lowers):
            clone = os.path.join(tmp, str(i))
            os.mkdir(clone)
            _idmapped_clone(lower, ns_fd, clone)
            made.append(clone)
        words[index] = "lowerdir=" + ":".join(made)
        do_mount(",".join(words))
    finally:
        os.close(ns_fd)
        for clone in made:
            libc.umount2(clone.encode(), MNT_DETACH)
        for name in os.listdir(tmp):
            with contextlib.suppress(OSError):
                os.rmdir(os.path.join(tmp, name))
        with contextlib.suppress(OSError):
            os.rmdir(tmp)
