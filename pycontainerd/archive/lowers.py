"""The lower layers of an overlay upper dir, as overlayfs shows them, and copy-up.

A layer applied straight into an overlayfs upper dir (:mod:`.apply`) sometimes needs what
only a lower layer holds: a hardlink whose target is in a lower layer (overlayfs itself
copies such a file up when a container links it), or the owner, mode and times of a
directory the layer creates only implicitly (containerd's ``mkparent``).
:func:`lower_entry` finds a path as the merged view would, :func:`copy_entry` copies it up.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence

from pycontainerd.archive.rootpath import Missing, proc_path, resolve_dir
from pycontainerd.errdefs import InvalidArgument

IGNORED_XATTR_PREFIXES = ("trusted.", "user.overlay.")
"""Never copied or taken from a layer: overlayfs's bookkeeping (``trusted.overlay.*``, or
``user.overlay.*`` with ``userxattr``) and the rest of the trusted namespace."""

_O_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def lower_entry(lowers: Sequence[int], comps: Sequence[str],
                opaque_xattr: str) -> tuple[int, tuple[str, ...], os.stat_result] | None:
    """``comps`` in the lower dirs ``lowers`` (fds, topmost first) as overlayfs shows it:
    in the topmost lower holding it, unless a higher one hides it (a whiteout, a
    non-directory over a parent, an opaque directory on the way). Symlinks on the way are
    followed inside each lower. Returns the fd of its parent directory (the caller closes
    it), its real path and its lstat; None when the merged view has no such path."""
    for lower in lowers:
        try:
            dfd, real = resolve_dir(lower, comps[:-1])
        except Missing:
            if _opaque_on_path(lower, comps[:-1], opaque_xattr):
                return None
            continue
        except InvalidArgument:
            return None
        try:
            st = os.stat(comps[-1], dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            os.close(dfd)
            if _opaque_on_path(lower, comps[:-1], opaque_xattr):
                return None
            continue
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:  # a whiteout
            os.close(dfd)
            return None
        return dfd, (*real, comps[-1]), st
    return None


def _opaque_on_path(lower: int, comps: Sequence[str], opaque_xattr: str) -> bool:
    for i in range(1, len(comps) + 1):
        try:
            fd, _ = resolve_dir(lower, comps[:i])
        except (Missing, InvalidArgument):
            return False
        try:
            if os.getxattr(proc_path(fd), opaque_xattr) == b"y":
                return True
        except OSError as exc:
            if exc.errno not in (errno.ENODATA, errno.ENOTSUP):
                raise
        finally:
            os.close(fd)
    return False


def copy_entry(src_dir: int, dst_dir: int, name: str, st: os.stat_result) -> None:
    """Copy the non-directory ``name`` (lstat ``st``) from ``src_dir`` to ``dst_dir``, where
    it must not exist: data, owner, mode, times, and for regular files the xattrs."""
    if stat.S_ISREG(st.st_mode):
        src = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src_dir)
        try:
            dst = os.open(name, _O_NEW_FILE, 0o600, dir_fd=dst_dir)
            try:
                left = st.st_size
                while left > 0:
                    n = os.sendfile(dst, src, None, min(left, 1 << 30))
                    if n == 0:
                        raise OSError(errno.EIO, f"{name}: file shrank while copying it up")
                    left -= n
                copy_info(src, dst)
            finally:
                os.close(dst)
        finally:
            os.close(src)
        return
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(name, dir_fd=src_dir), name, dir_fd=dst_dir)
    else:
        os.mknod(name, st.st_mode, st.st_rdev, dir_fd=dst_dir)
    os.chown(name, st.st_uid, st.st_gid, dir_fd=dst_dir, follow_symlinks=False)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(name, stat.S_IMODE(st.st_mode), dir_fd=dst_dir)
    os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst_dir, follow_symlinks=False)


def copy_info(src_fd: int, dst_fd: int) -> None:
    """Owner, mode, xattrs (not :data:`IGNORED_XATTR_PREFIXES`) and times of ``src_fd`` onto
    ``dst_fd`` (mode after owner: chown clears setuid/setgid)."""
    st = os.fstat(src_fd)
    os.fchown(dst_fd, st.st_uid, st.st_gid)
    os.fchmod(dst_fd, stat.S_IMODE(st.st_mode))
    try:
        names = os.listxattr(proc_path(src_fd))
    except OSError as exc:
        if exc.errno not in (errno.ENOTSUP, errno.ENODATA):
            raise
        names = []
    for attr in names:
        if attr.startswith(IGNORED_XATTR_PREFIXES):
            continue
        try:
            os.setxattr(dst_fd, attr, os.getxattr(proc_path(src_fd), attr))
        except OSError as exc:
            if exc.errno not in (errno.ENOTSUP, errno.ENODATA):
                raise
    os.utime(dst_fd, ns=(st.st_atime_ns, st.st_mtime_ns))
