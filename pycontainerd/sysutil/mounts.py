"""``mount(2)`` as containerd's ``mount.Mount`` does it, for the shim and the core alike:
:func:`mount_all` / :func:`unmount_all` and the ``MS_*`` flags.

Option words become ``MS_*`` flags (``ro``, ``bind``, ``rbind``, ``nosuid``, ``nodev``,
``noexec`` …), the rest is the filesystem data string; ``bind`` mounts take their flags on
a remount; propagation words (``rprivate`` …) are applied last. A mount is anything with
``type``, ``source`` and ``options`` (:class:`pycontainerd.mount.Mount`, the shim's
:data:`pycontainerd.shim.proto.Mount`); no ``dataclasses`` here (it pulls ``inspect`` and
``ast``, ~2.5 MiB in every shim).

An overlay data string longer than a page (the kernel's limit on mount data) is shortened
by making the layer paths relative to their common parent and mounting from that
directory, as containerd does, so images with 128 layers still mount. An overlay with
``uidmap=``/``gidmap=`` words gets id-mapped lower layers (:mod:`.idmap`). ``mount(2)``
resolves those paths against the caller's working directory: by default the call changes
it and changes it back (right for the single-threaded shim); a threaded caller passes
``mount_in`` to do that call elsewhere (the core runs ``mount(8)`` in a child).
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable, Iterable, Sequence

from ..errdefs import InvalidArgument, quote
from . import files, idmap, libc

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


def _mount_in_cwd(source: str, target: str, fstype: str, flags: int, data: str, cwd: str) -> None:
    """``mount(2)`` with ``cwd`` as this process's working directory for the call."""
    back = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.chdir(cwd)  # mount(2) resolves the relative layer paths against it
        _mount(source, target, fstype, flags, data)
    finally:
        os.fchdir(back)
        os.close(back)


MountIn = Callable[[str, str, str, int, str, str], None]
"""``(source, target, fstype, flags, data, cwd)``: mount with relative paths in ``data``
resolved against ``cwd``."""


def mount(m, target: str, mount_in: MountIn = _mount_in_cwd) -> None:
    """Mount ``m`` on ``target``; a compacted overlay is mounted through ``mount_in``.
    Raises :class:`OSError` (with the errno) on failure and :class:`InvalidArgument` for an
    overlay whose data cannot fit the kernel's limit."""
    flags, propagation, data = parse_options(m.options)
    fstype = "" if m.type == "bind" else m.type
    if m.type == "bind":
        flags |= MS_BIND
    if m.type == "overlay":
        data, maps = idmap.split_maps(data)
        if maps:
            try:
                idmap.mount_overlay(data, maps, target,
                                    lambda d: _mount_overlay(m.source, target, flags, d, mount_in))
            except ValueError as exc:
                raise InvalidArgument(f"overlay mount for {quote(target)}: {exc}") from exc
        else:
            _mount_overlay(m.source, target, flags, data, mount_in)
    else:
        _mount(m.source, target, fstype, flags & ~MS_RDONLY if flags & MS_BIND else flags, data)
        if flags & MS_BIND and flags & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC):
            _mount("", target, "", flags | MS_REMOUNT | MS_BIND, "")  # a bind takes its flags on a remount
    if propagation:
        _mount("", target, "", propagation, "")


def _mount_overlay(source: str, target: str, flags: int, data: str, mount_in: MountIn) -> None:
    if len(data) < PAGE_SIZE:
        _mount(source, target, "overlay", flags, data)
        return
    compact = compact_overlay(data)
    if compact is None or len(compact[0]) >= PAGE_SIZE:
        raise InvalidArgument(f"overlay mount options for {quote(target)} exceed the page size")
    short, cwd = compact
    mount_in(source, os.path.abspath(target), "overlay", flags, short, cwd)


def mount_all(mounts: Sequence, target: str, mount_in: MountIn = _mount_in_cwd) -> None:
    """Mount each of ``mounts`` on ``target`` in order; on failure, undo what was done."""
    done = 0
    try:
        for m in mounts:
            mount(m, target, mount_in)
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
