"""Mounts as containerd describes them (``containerd.types.Mount``): a type, a source and a
list of options, turned into ``mount(2)`` calls here.

Snapshotters *return* mounts and never mount; the diff applier, the task manager and
``ctr snapshots mounts`` users mount them with :func:`mount_all` and must always undo it
with :func:`unmount_all` (also on errors).

Options are split the way ``mount(8)`` does: flag words (``ro``, ``bind``, ``rbind``,
``nosuid``, ``nodev``, ``noexec``, ``rprivate`` …) become ``MS_*`` flags, the rest is the
filesystem data string. An overlay data string longer than a page (the kernel's limit on
mount data) is shortened by making the layer paths relative to their common parent and
mounting from that directory, as containerd does, so images with 128 layers still mount.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field

from .errdefs import InvalidArgument, quote
# the option tables, the mount(2) call and the overlay compaction live in the shim's lean
# module (no dataclasses/subprocess: the shim's memory is a goal); the core shares them
from .shim.mounts import _mount as _syscall_mount
from .shim.mounts import compact_overlay as _compact_overlay
from .shim.mounts import parse_options

_libc = ctypes.CDLL(None, use_errno=True)  # the already-loaded libc; no find_library (it forks ldconfig)
_libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC = 32, 4096, 16384
MS_PRIVATE, MS_SLAVE, MS_SHARED, MS_UNBINDABLE = 1 << 18, 1 << 19, 1 << 20, 1 << 17
MNT_DETACH = 2
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

@dataclass(frozen=True)
class Mount:
    """One mount: ``type`` (``overlay``, ``bind``, ``tmpfs`` …), ``source`` and ``options``."""

    type: str
    source: str
    options: Sequence[str] = field(default_factory=tuple)
    target: str = ""


def mount(m: Mount, target: str) -> None:
    """Mount ``m`` on ``target``. Raises :class:`OSError` (with the errno) on failure and
    :class:`InvalidArgument` for a mount whose data cannot fit the kernel's limit."""
    flags, propagation, data = parse_options(m.options)
    fstype = "" if m.type == "bind" else m.type
    if m.type == "bind":
        flags |= MS_BIND
    if m.type == "overlay" and len(data) >= PAGE_SIZE:
        compact = _compact_overlay(data)
        if compact is None or len(compact[0]) >= PAGE_SIZE:
            raise InvalidArgument(f"overlay mount options for {quote(target)} exceed the page size")
        short, cwd = compact
        # mount(2) resolves relative lowerdirs against the caller's cwd: do it in a child.
        proc = subprocess.run(["mount", "-t", "overlay", "-o", short, m.source, os.path.abspath(target)],
                              cwd=cwd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise OSError(0, f"mount overlay on {target}: {proc.stderr.strip()}")
    else:
        _syscall_mount(m.source, target, fstype, flags & ~MS_RDONLY if flags & MS_BIND else flags, data)
        if flags & MS_BIND and flags & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC):
            # a bind mount takes its flags only on a remount
            _syscall_mount("", target, "", flags | MS_REMOUNT | MS_BIND, "")
    if propagation:
        _syscall_mount("", target, "", propagation, "")


def mount_all(mounts: Sequence[Mount], target: str) -> None:
    """Mount each of ``mounts`` on ``target`` in order; on failure, undo what was done."""
    done = 0
    try:
        for m in mounts:
            mount(m, target)
            done += 1
    except BaseException:
        for _ in range(done):
            unmount(target)
        raise


def unmount(target: str, detach: bool = False) -> None:
    """Unmount ``target`` once. Raises :class:`OSError`."""
    if _libc.umount2(target.encode(), MNT_DETACH if detach else 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unmount {target}: {os.strerror(err)}")


def unmount_all(target: str) -> None:
    """Unmount everything stacked on ``target`` (until it is no longer a mount point)."""
    while is_mountpoint(target):
        unmount(target)


def is_mountpoint(path: str) -> bool:
    """True when ``path`` is listed as a mount point in ``/proc/self/mountinfo``."""
    real = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].encode().decode("unicode_escape")
            if mp == real:
                return True
    return False
