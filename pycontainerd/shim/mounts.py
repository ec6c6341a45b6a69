"""The task's rootfs mounts, done by the shim: :func:`mount_all` / :func:`unmount_all`.

The same ``mount(2)`` semantics as :mod:`pycontainerd.mount` (containerd's ``mount.Mount``:
option words become ``MS_*`` flags, the rest is the data string; ``bind`` mounts take their
flags on a remount; propagation words are applied last), without its imports
(``dataclasses`` pulls ``inspect`` and ``ast``, ~2.5 MiB in every shim). The mounts are
anything with ``type``, ``source`` and ``options`` (a
:data:`pycontainerd.shim.proto.Mount`). ``tests/unit/test_shim_mounts.py`` checks the
option parsing against :mod:`pycontainerd.mount`.

An overlay data string longer than a page (the kernel's limit) is shortened by making the
layer paths relative to their common parent and mounting from that directory, as
containerd does; the shim is single-threaded, so it changes its own working directory for
that call and changes it back.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterable, Sequence

from ..errdefs import InvalidArgument, quote
from . import files, libc

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC = 32, 4096, 16384
MS_PRIVATE, MS_SLAVE, MS_SHARED, MS_UNBINDABLE = 1 << 18, 1 << 19, 1 << 20, 1 << 17
MNT_DETACH = 2
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

_FLAGS = {
    "ro": (MS_RDONLY, True), "rw": (MS_RDONLY, False),
    "nosuid": (MS_NOSUID, True), "suid": (MS_NOSUID, False),
    "nodev": (MS_NODEV, True), "dev": (MS_NODEV, False),
    "noexec": (MS_NOEXEC, True), "exec": (MS_NOEXEC, False),
    "bind": (MS_BIND, True), "rbind": (MS_BIND | MS_REC, True), "remount": (MS_REMOUNT, True),
    "defaults": (0, True),
}
_PROPAGATION = {
    "private": MS_PRIVATE, "rprivate": MS_PRIVATE | MS_REC, "slave": MS_SLAVE, "rslave": MS_SLAVE | MS_REC,
    "shared": MS_SHARED, "rshared": MS_SHARED | MS_REC, "unbindable": MS_UNBINDABLE,
    "runbindable": MS_UNBINDABLE | MS_REC,
}


def parse_options(options: Iterable[str]) -> tuple[int, int, str]:
    """``(flags, propagation flags, data)`` for a list of mount options."""
    flags = propagation = 0
    data: list[str] = []
    for opt in options:
        if opt in _FLAGS:
            bit, on = _FLAGS[opt]
            flags = flags | bit if on else flags & ~bit
        elif opt in _PROPAGATION:
            propagation |= _PROPAGATION[opt]
        else:
            data.append(opt)
    return flags, propagation, ",".join(data)


def _mount(source: str, target: str, fstype: str, flags: int, data: str) -> None:
    if libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None, flags,
                   data.encode() if data else None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} on {target} ({fstype}, {data[:200]!r}): {os.strerror(err)}")


def compact_overlay(data: str) -> tuple[str, str] | None:
    """``(data with layer paths relative to their common parent, that parent)``, or None."""
    opts = data.split(",")
    paths: list[str] = []
    for o in opts:
        k, _, v = o.partition("=")
        if k == "lowerdir":
            paths.extend(v.split(":"))
        elif k in ("upperdir", "workdir"):
            paths.append(v)
    if not paths:
        return None
    common = os.path.commonpath(paths)
    if common == "/":
        return None
    out = []
    for o in opts:
        k, _, v = o.partition("=")
        if k == "lowerdir":
            out.append("lowerdir=" + ":".join(os.path.relpath(p, common) for p in v.split(":")))
        elif k in ("upperdir", "workdir"):
            out.append(f"{k}={os.path.relpath(v, common)}")
        else:
            out.append(o)
    return ",".join(out), common


def mount(m, target: str) -> None:
    """Mount ``m`` on ``target``. Raises :class:`OSError` (with the errno) on failure and
    :class:`InvalidArgument` for an overlay whose data cannot fit the kernel's limit."""
    flags, propagation, data = parse_options(m.options)
    fstype = "" if m.type == "bind" else m.type
    if m.type == "bind":
        flags |= MS_BIND
    if m.type == "overlay" and len(data) >= PAGE_SIZE:
        compact = compact_overlay(data)
        if compact is None or len(compact[0]) >= PAGE_SIZE:
            raise InvalidArgument(f"overlay mount options for {quote(target)} exceed the page size")
        short, cwd = compact
        target = os.path.abspath(target)
        back = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.chdir(cwd)  # mount(2) resolves the relative layer paths against it
            _mount(m.source, target, fstype, flags, short)
        finally:
            os.fchdir(back)
            os.close(back)
    else:
        _mount(m.source, target, fstype, flags & ~MS_RDONLY if flags & MS_BIND else flags, data)
        if flags & MS_BIND and flags & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC):
            _mount("", target, "", flags | MS_REMOUNT | MS_BIND, "")  # a bind takes its flags on a remount
    if propagation:
        _mount("", target, "", propagation, "")


def mount_all(mounts: Sequence, target: str) -> None:
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
    if libc.umount2(target.encode(), MNT_DETACH if detach else 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unmount {target}: {os.strerror(err)}")


def unmount_all(target: str) -> None:
    """Unmount everything stacked on ``target`` (until it is no longer a mount point)."""
    while is_mountpoint(target):
        unmount(target)


def is_mountpoint(path: str) -> bool:
    """True when ``path`` is listed as a mount point in ``/proc/self/mountinfo``."""
    real = os.path.realpath(path)
    for line in files.read_text("/proc/self/mountinfo").splitlines():
        mp = line.split()[4].encode().decode("unicode_escape")
        if mp == real:
            return True
    return False
