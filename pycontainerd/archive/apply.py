"""Applying an OCI layer (a tar changeset, possibly compressed) onto a directory.

:func:`apply_layer` is containerd's ``archive.Apply`` + ``diff/apply``'s digesting reader in
one streaming pass: compressed blob → decompressor → sha256 of the uncompressed bytes (the
layer's diffID) → ``tarfile`` in stream mode, read by Go's rules (:mod:`.tarstream`) →
filesystem. No temporary copy of the layer is made; after the last tar entry the rest of
the stream is drained through the digest (as containerd does) so that the diffID covers
the whole uncompressed stream and gzip/zstd trailers are checked.

Containment (the point of this module)
--------------------------------------
A layer never creates, modifies, chowns, chmods, removes or sets times on anything outside
``root``. Every entry name, hardlink target and whiteout target is resolved inside root by
:mod:`.rootpath` (symlinks followed by our code, never by the kernel), and every operation
on the entry itself is an ``*at`` call on its parent fd that does not follow a final
symlink (``O_NOFOLLOW|O_EXCL`` creates, ``fchownat``/``utimensat`` with
``AT_SYMLINK_NOFOLLOW``, ``linkat`` without ``AT_SYMLINK_FOLLOW``, xattrs and chmod
through ``/proc/self/fd`` of a non-following fd). The last component of an entry is never
resolved: a symlink there is replaced, not written through. Refused with
:class:`~pycontainerd.errdefs.InvalidArgument`: names containing NUL, more than 255
symlinks on one path, a path (as resolved) longer than ``PATH_MAX``, a parent that is not a
directory, a hardlink whose target does not exist inside root or, for an overlay upper
dir, in the merged lower layers (or is a directory), a
whiteout of ``.``/``..``, unknown entry types, and xattrs in the ``trusted.`` namespace are
ignored (a layer must not forge overlayfs metadata), as containerd does.

Replacing existing paths (OCI "changeset over existing files", containerd ``applyNaive``):
a directory entry over a directory merges (the entry's metadata wins); anything else
removes the existing path first (recursively, with fds, never following symlinks).
Ownership is numeric and kept; modes are set after ``chown`` (which clears setuid/setgid);
directory times are set at the end, deepest first. Times before the epoch or beyond what
``timespec`` holds become the epoch (containerd's ``boundTime``); atime is
``max(atime, mtime)``.

Whiteouts
---------
``.wh.<name>`` removes ``<name>`` of the lower layers; ``.wh..wh..opq`` hides every lower
child of its directory. With ``overlay_whiteouts=True`` (``root`` is an overlayfs upper
dir) they become what overlayfs reads: a 0/0 character device named ``<name>``, and the
xattr ``trusted.overlay.opaque=y`` on the directory. With ``False`` (native snapshotter,
plain directory holding the merged lower content) the lower paths are removed. As the OCI
spec requires, a whiteout never removes what the *same* layer created, whatever the order
of entries (containerd's naive applier does remove it; its opaque handling already keeps
same-layer children, and we extend that to plain whiteouts and implicit parents). With
overlay whiteouts, a directory the layer re-creates after whiting it out (``.wh.d`` then
``d/`` or ``d/x``) becomes opaque, so the lower ``d`` stays deleted (containerd replaces
the whiteout device by a plain directory there, which shows the lower content again).

Hardlinks to a lower layer and rootless daemons
-----------------------------------------------
In an overlay upper dir, a hardlink whose target only a lower layer holds copies the
target up (data, owner, mode, xattrs, times; :mod:`.lowers`), as overlayfs does when a
container links a lower file, and links to the copy: the layers above see both names
share one inode. containerd refuses such layers.

In a user namespace (a rootless daemon, no ``CAP_MKNOD``): FIFOs and whiteout devices are
made as usual (0/0 character devices need no privilege since Linux 5.8); other device
nodes that cannot be made are skipped with a warning, as containerd does there; with
``userxattr=True`` (the overlay is mounted with ``userxattr``) opaque directories carry
``user.overlay.opaque=y`` instead of the ``trusted.`` xattr, which needs privilege.
``trusted.*`` and ``user.overlay.*`` xattrs carried by a layer are ignored either way.

Durability and failure
----------------------
On success the data is made durable with a single ``syncfs(2)`` on root's filesystem before
returning, so the caller may commit the snapshot right away: one call that writes back
the whole layer, far cheaper than an ``fsync`` per file (thousands of journal commits).
(containerd 1.6.20 does not sync after an apply at all — no ``fsync``/``syncfs`` in its
archive, diff or snapshot code — so a crash right after a pull can leave committed
snapshots with missing data; ``sync=False`` gives that behaviour back.) On failure
``apply_layer`` does **not** roll back: ``root`` is left half-applied and the caller (the
owner of the active snapshot) must discard it, as containerd's unpacker removes the
snapshot it prepared.
"""

from __future__ import annotations

import ctypes
import errno
import math
import os
import stat
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO

import structlog

from pycontainerd.archive.compression import Compression, Reader, open_layer
from pycontainerd.archive.lowers import IGNORED_XATTR_PREFIXES, copy_entry, copy_info, lower_entry
from pycontainerd.archive.rootpath import (
    O_DIR,
    O_DIR_READ,
    Missing,
    clean_name,
    proc_path,
    remove_all,
    resolve_dir,
)
from pycontainerd.archive.tarstream import DigestReader, Hole, TarFeed
from pycontainerd.errdefs import InvalidArgument, ResourceExhausted, quote
from pycontainerd.fsutil import running_in_userns

__all__ = ["ApplyResult", "apply_layer", "clean_name", "remove_all", "syncfs"]

log = structlog.get_logger(__name__)

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = WHITEOUT_PREFIX + WHITEOUT_PREFIX
WHITEOUT_OPAQUE = WHITEOUT_META_PREFIX + ".opq"
OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"
USER_OVERLAY_OPAQUE_XATTR = "user.overlay.opaque"
PAX_XATTR = "SCHILY.xattr."

_FD_CACHE_SIZE = 256
_MAX_TIME_NS = (1 << 63) - 1
_MAX_ID = (1 << 32) - 2  # uid_t/gid_t; 2**32 - 1 is chown's "unchanged"

_O_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC

_libc = ctypes.CDLL(None, use_errno=True)  # libc is loaded; find_library would spawn ldconfig


@dataclass(frozen=True)
class ApplyResult:
    """``diff_id``: ``sha256:`` of the uncompressed tar; ``size``: its length in bytes
    (what containerd's Diff.Apply returns as the applied descriptor)."""

    diff_id: str
    size: int
    compression: Compression = Compression.UNCOMPRESSED


def syncfs(fd: int) -> None:
    """``syncfs(2)`` on the filesystem holding ``fd`` (falls back to ``sync(2)``)."""
    syncfs_fn = getattr(_libc, "syncfs", None)
    if syncfs_fn is None:
        os.sync()
        return
    if syncfs_fn(fd) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"syncfs: {os.strerror(err)}")


def apply_layer(
    stream: BinaryIO | Reader,
    root: str | os.PathLike[str],
    *,
    overlay_whiteouts: bool,
    media_type: str | None = None,
    parents: Sequence[str | os.PathLike[str]] = (),
    sync: bool = True,
    userxattr: bool = False,
) -> ApplyResult:
    """Apply the layer read from ``stream`` onto the directory ``root``.

    Args:
        stream: the layer blob as stored (gzip, zstd or plain tar), read once to the end.
        root: existing directory to apply onto (an overlay upper dir, or a plain directory
            holding the merged lower layers).
        overlay_whiteouts: write whiteouts as overlayfs does (see module doc).
        media_type: the blob's media type; ``None`` detects compression by magic bytes.
            An unsupported type raises InvalidArgument before anything is read.
        parents: overlay lower dirs, topmost first; a directory this layer creates only
            implicitly (``a/`` for an entry ``a/b`` without an ``a/`` entry) copies owner,
            mode, times and xattrs from the first parent that has it, as containerd's
            ``mkparent`` does. Read only.
        sync: ``syncfs`` root's filesystem before returning (leave True unless the caller
            syncs itself).
        userxattr: the overlay is mounted with ``userxattr`` (a daemon in a user
            namespace): opaque directories carry ``user.overlay.opaque``.

    Returns:
        The diffID and uncompressed size.

    Raises:
        InvalidArgument: unsupported media type, corrupt or truncated compressed data or
            tar, or an entry refused for containment (see module doc). ``root`` is then
            left half-applied: the caller discards it.
        ResourceExhausted: out of space or quota.
        OSError: other filesystem failures (also reading ``stream``).
    """
    reader, compression = open_layer(stream, media_type)
    digesting = DigestReader(reader)
    root_fd = os.open(os.fspath(root), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    parent_fds: list[int] = []
    try:
        for p in parents:
            parent_fds.append(os.open(os.fspath(p), O_DIR & ~os.O_NOFOLLOW))
        applier = _Applier(root_fd, overlay=overlay_whiteouts, parent_fds=parent_fds, userxattr=userxattr)
        feed = TarFeed(digesting)
        try:
            applier.run(feed)
        finally:
            feed.close()
            applier.close()
        if sync:
            syncfs(root_fd)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise ResourceExhausted(f"apply layer: {exc}") from exc
        raise
    finally:
        for fd in parent_fds:
            os.close(fd)
        os.close(root_fd)
    return ApplyResult(diff_id="sha256:" + digesting.hash.hexdigest(), size=digesting.count,
                       compression=compression)




# --- the applier -------------------------------------------------------------------------


def _pax_time_ns(value: str | None, fallback: float) -> int:
    if value:
        try:
            sign = -1 if value.startswith("-") else 1
            whole, _, frac = value.lstrip("+-").partition(".")
            return sign * (int(whole or "0") * 1_000_000_000 + int((frac + "000000000")[:9] or "0"))
        except ValueError:
            pass
    if not math.isfinite(fallback):  # a pax mtime of "nan"/"inf": treated as out of range (epoch)
        return 0
    return int(fallback * 1_000_000_000)


def _bound_ns(ns: int) -> int:
    return 0 if ns < 0 or ns > _MAX_TIME_NS else ns


def _exists(dir_fd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _key(real: Sequence[str], name: str) -> str:
    return "/".join((*real, name))


class _Applier:
    def __init__(self, root_fd: int, *, overlay: bool, parent_fds: Sequence[int], userxattr: bool = False) -> None:
        self.root_fd = root_fd
        self.overlay = overlay
        self.opaque_xattr = USER_OVERLAY_OPAQUE_XATTR if userxattr else OVERLAY_OPAQUE_XATTR
        self.parent_fds = parent_fds
        self.unpacked: set[str] = set()
        self.ancestors: set[str] = set()
        self.dir_times: dict[str, tuple[int, int]] = {}
        self.whiteouts: set[str] = set()  # overlay whiteout devices made by this layer
        self._cache: dict[tuple[str, ...], tuple[int, tuple[str, ...]]] = {}
        self._stale: list[int] = []

    # -- fd cache of parent directories --
    # Keyed by the cleaned parent name. Creating entries never changes how an existing
    # name resolves (a missing component is created as a directory on first use, so a
    # symlink can only appear where nothing was resolved through); removing can, so every
    # removal drops the cache. Dropped fds stay open until the current entry is done,
    # because the entry's code still holds its parent fd (never the removed path itself:
    # removals only target children of an fd in hand).

    def close(self) -> None:
        self._invalidate()
        self._close_stale()

    def _invalidate(self) -> None:
        self._stale.extend(fd for fd, _ in self._cache.values())
        self._cache.clear()

    def _close_stale(self) -> None:
        for fd in self._stale:
            os.close(fd)
        self._stale.clear()

    def _parent(self, comps: Sequence[str]) -> tuple[int, tuple[str, ...]]:
        key = tuple(comps)
        hit = self._cache.pop(key, None)
        if hit is None:
            if len(self._cache) >= _FD_CACHE_SIZE:  # least recently used out
                oldest = next(iter(self._cache))
                self._stale.append(self._cache.pop(oldest)[0])
            hit = resolve_dir(self.root_fd, comps, mkdir=self._mkparent, replace=self._reopen_whiteout)
        self._cache[key] = hit
        return hit

    def _remove(self, dir_fd: int, name: str) -> None:
        self._invalidate()
        remove_all(dir_fd, name)

    def _mkparent(self, dir_fd: int, name: str, real: tuple[str, ...]) -> None:
        os.mkdir(name, 0o755, dir_fd=dir_fd)
        fd = os.open(name, O_DIR_READ, dir_fd=dir_fd)
        try:
            os.fchmod(fd, 0o755)  # not the umask's idea
            for pfd in self.parent_fds:
                try:
                    lower, _ = resolve_dir(pfd, real)
                except Missing:
                    continue
                except InvalidArgument:
                    break  # replaced by a non-directory below: keep the defaults
                try:
                    copy_info(lower, fd)
                finally:
                    os.close(lower)
                break
        finally:
            os.close(fd)

    def _reopen_whiteout(self, dir_fd: int, name: str, real: tuple[str, ...]) -> bool:
        """An implicit parent where this layer put an overlay whiteout (``.wh.d`` then
        ``d/x``): the lower ``d`` stays deleted, so the new ``d`` is an opaque directory."""
        key = "/".join(real)
        if key not in self.whiteouts:
            return False
        self.whiteouts.discard(key)
        self._invalidate()
        os.unlink(name, dir_fd=dir_fd)
        os.mkdir(name, 0o755, dir_fd=dir_fd)
        fd = os.open(name, O_DIR_READ, dir_fd=dir_fd)
        try:
            os.fchmod(fd, 0o755)
            os.setxattr(fd, self.opaque_xattr, b"y")
        finally:
            os.close(fd)
        return True

    def _mark(self, real: tuple[str, ...], name: str) -> None:
        self.unpacked.add(_key(real, name))
        for i in range(len(real), 0, -1):
            anc = "/".join(real[:i])
            if anc in self.ancestors:
                break
            self.ancestors.add(anc)

    # -- the loop --

    def run(self, feed: TarFeed) -> None:
        for member, data in feed.members():
            try:
                self._entry(member, data)
                self._close_stale()
            except OSError as exc:
                if exc.errno == errno.ENAMETOOLONG:
                    raise InvalidArgument(f"tar entry {quote(member.name[:200])}: {exc.strerror}") from exc
                exc.add_note(f"applying tar entry {member.name!r}")
                raise
        self._set_dir_times()

    def _entry(self, m: tarfile.TarInfo, data: Iterator[bytes]) -> None:
        if "\x00" in m.name or "\x00" in m.linkname:
            raise InvalidArgument(f"tar entry {quote(m.name)}: name contains NUL")
        if m.size < 0:
            raise InvalidArgument(f"tar entry {quote(m.name)}: negative size")
        if not (-1 <= m.uid <= _MAX_ID and -1 <= m.gid <= _MAX_ID):  # -1: unchanged, as chown(2)
            raise InvalidArgument(f"tar entry {quote(m.name)}: owner {m.uid}:{m.gid} out of range")
        comps = clean_name(m.name)
        if not comps:
            log.debug("tar entry resolves to root, ignored", name=m.name)
            return
        base = comps[-1]
        try:
            pfd, preal = self._parent(comps[:-1])
        except InvalidArgument as exc:
            raise InvalidArgument(f"tar entry {quote(m.name)}: {exc.context}") from exc

        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(m, pfd, preal, base)
            return

        key = _key(preal, base)
        # a directory over this layer's own overlay whiteout: the lower one stays hidden
        reopened = key in self.whiteouts and m.isdir()
        self.whiteouts.discard(key)

        # Create first; only when the name is taken look at what is there (one syscall
        # less per entry in the common case). An existing path is replaced, except that a
        # directory over a directory merges.
        if m.isdir():
            try:
                os.mkdir(base, 0o700, dir_fd=pfd)
            except FileExistsError:
                if not stat.S_ISDIR(os.stat(base, dir_fd=pfd, follow_symlinks=False).st_mode):
                    self._remove(pfd, base)
                    os.mkdir(base, 0o700, dir_fd=pfd)
            fd = os.open(base, O_DIR_READ, dir_fd=pfd)
            try:
                if reopened:
                    os.setxattr(fd, self.opaque_xattr, b"y")
                self._meta_fd(fd, m, is_dir=True)
            finally:
                os.close(fd)
            self.dir_times.pop(key, None)
            self.dir_times[key] = self._times(m)
        elif m.isreg():
            fd = self._replacing(pfd, base, lambda: os.open(base, _O_NEW_FILE, 0o600, dir_fd=pfd))
            try:
                self._copy_data(m, data, fd)
                self._meta_fd(fd, m, is_dir=False)
            finally:
                os.close(fd)
        elif m.issym():
            if not m.linkname:  # symlink(2) refuses an empty target with ENOENT
                raise InvalidArgument(f"tar entry {quote(m.name)}: symlink with an empty target")
            self._replacing(pfd, base, lambda: os.symlink(m.linkname, base, dir_fd=pfd))
            self._meta_path(pfd, base, m)
        elif m.islnk():
            self._replacing(pfd, base, lambda: self._hardlink(m, pfd, base))
            # the link shares its target's inode: its mode stays the target's (containerd
            # in practice, and umoci, do not chmod through a hardlink header)
            self._meta_path(pfd, base, m, chmod=False)
        elif m.ischr() or m.isblk() or m.isfifo():
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK if m.isblk() else stat.S_IFIFO
            try:
                dev = os.makedev(m.devmajor, m.devminor)
            except (OverflowError, ValueError) as exc:
                raise InvalidArgument(f"tar entry {quote(m.name)}: device {m.devmajor}:{m.devminor}: {exc}") from exc
            try:
                self._replacing(pfd, base, lambda: os.mknod(base, kind | 0o600, dev, dir_fd=pfd))
            except PermissionError:
                if kind == stat.S_IFIFO or not running_in_userns():
                    raise
                # no CAP_MKNOD (a rootless daemon): skipped, as containerd does in a user namespace
                log.warning("device node skipped: no permission to create it in this user namespace",
                            name=m.name, major=m.devmajor, minor=m.devminor)
                return
            self._meta_path(pfd, base, m)
        else:
            raise InvalidArgument(f"tar entry {quote(m.name)}: unhandled tar header type {m.type!r}")
        self._mark(preal, base)

    def _replacing(self, pfd: int, base: str, create):
        """``create()``; if the name exists, remove what is there and create again."""
        try:
            return create()
        except FileExistsError:
            self._remove(pfd, base)
            return create()

    @staticmethod
    def _copy_data(m: tarfile.TarInfo, data: Iterator[bytes], fd: int) -> None:
        for chunk in data:
            if isinstance(chunk, Hole):
                os.lseek(fd, chunk, os.SEEK_CUR)
                continue
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view):]
        if m.issparse():
            try:
                os.ftruncate(fd, m.size)  # a trailing hole
            except OSError as exc:
                if exc.errno == errno.EFBIG:
                    raise InvalidArgument(f"tar entry {quote(m.name)}: size {m.size}: {exc.strerror}") from exc
                raise

    def _hardlink(self, m: tarfile.TarInfo, pfd: int, base: str) -> None:
        target = clean_name(m.linkname)
        if not target:
            raise InvalidArgument(f"hardlink {quote(m.name)}: target {quote(m.linkname)} is the root")
        lfd, name = self._link_target(m, target)
        try:
            # follow_symlinks=False: linkat without AT_SYMLINK_FOLLOW links a symlink itself
            os.link(name, base, src_dir_fd=lfd, dst_dir_fd=pfd, follow_symlinks=False)
        except (FileNotFoundError, IsADirectoryError, PermissionError, NotADirectoryError) as exc:
            raise InvalidArgument(f"hardlink {quote(m.name)} -> {quote(m.linkname)}: {exc.strerror}") from exc
        except OSError as exc:
            if exc.errno == errno.EXDEV:
                raise InvalidArgument(f"hardlink {quote(m.name)} -> {quote(m.linkname)}: {exc.strerror}") from exc
            raise
        finally:
            os.close(lfd)

    def _link_target(self, m: tarfile.TarInfo, target: list[str]) -> tuple[int, str]:
        """The directory fd (the caller closes it) and name of a hardlink's target in root.

        In an overlay upper dir the target may exist only in a lower layer: it is then
        copied up, as overlayfs does when a container links a lower file, and the link
        shares the copy's inode (containerd fails such layers)."""
        try:
            lfd, _ = resolve_dir(self.root_fd, target[:-1])
        except Missing:
            lfd = None
        if lfd is not None:
            if not self.overlay or not self.parent_fds or _exists(lfd, target[-1]):
                if self.overlay and "/".join(target) in self.whiteouts:  # deleted by this layer
                    os.close(lfd)
                    raise InvalidArgument(f"hardlink {quote(m.name)}: target {quote(m.linkname)} not found")
                return lfd, target[-1]
            os.close(lfd)
        elif not self.overlay or not self.parent_fds:
            raise InvalidArgument(f"hardlink {quote(m.name)}: target {quote(m.linkname)} not found")
        return self._copy_up(m, target)

    def _copy_up(self, m: tarfile.TarInfo, target: list[str]) -> tuple[int, str]:
        found = lower_entry(self.parent_fds, target, self.opaque_xattr)
        if found is None:
            raise InvalidArgument(f"hardlink {quote(m.name)}: target {quote(m.linkname)} not found")
        sfd, real, st = found
        try:
            if stat.S_ISDIR(st.st_mode):
                raise InvalidArgument(f"hardlink {quote(m.name)} -> {quote(m.linkname)}: is a directory")
            dfd, _ = self._parent(real[:-1])  # cached: not closed here
            copy_entry(sfd, dfd, real[-1], st)
        finally:
            os.close(sfd)
        log.debug("hardlink target copied up from a lower layer", name=m.name, target="/".join(real))
        return os.open(".", O_DIR, dir_fd=dfd), real[-1]

    # -- whiteouts --

    def _whiteout(self, m: tarfile.TarInfo, pfd: int, preal: tuple[str, ...], base: str) -> None:
        if base == WHITEOUT_OPAQUE:
            self._opaque(pfd, preal)
            return
        orig = base[len(WHITEOUT_PREFIX):]
        if orig in ("", ".", ".."):
            raise InvalidArgument(f"invalid whiteout name {quote(m.name)}: invalid archive")
        key = _key(preal, orig)
        try:
            st = os.stat(orig, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            st = None
        if key in self.unpacked or key in self.ancestors:
            # created by this very layer: the whiteout applies to the lower layers only
            if st is not None and stat.S_ISDIR(st.st_mode):
                fd = os.open(orig, O_DIR, dir_fd=pfd)
                try:
                    self._opaque(fd, (*preal, orig))
                finally:
                    os.close(fd)
            return
        if st is not None:
            self._remove(pfd, orig)
        if self.overlay:
            os.mknod(orig, stat.S_IFCHR, 0, dir_fd=pfd)
            os.chown(orig, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)
            self.whiteouts.add(key)

    def _opaque(self, dfd: int, dreal: tuple[str, ...]) -> None:
        if self.overlay:
            os.setxattr(proc_path(dfd), self.opaque_xattr, b"y")
            return
        # plain directory: remove every child that this layer did not create
        todo: list[tuple[str, ...]] = [dreal]
        first = True
        while todo:
            real = todo.pop()
            if first:
                fd = os.open(".", O_DIR_READ & ~os.O_NOFOLLOW, dir_fd=dfd)
                first = False
            else:
                try:
                    pfd, _ = resolve_dir(self.root_fd, real)
                except Missing:
                    continue
                try:
                    fd = os.open(".", O_DIR_READ & ~os.O_NOFOLLOW, dir_fd=pfd)
                finally:
                    os.close(pfd)
            try:
                for name in os.listdir(fd):
                    key = _key(real, name)
                    if key in self.unpacked or key in self.ancestors:
                        if stat.S_ISDIR(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode):
                            todo.append((*real, name))
                    else:
                        self._remove(fd, name)
            finally:
                os.close(fd)

    # -- metadata --

    @staticmethod
    def _times(m: tarfile.TarInfo) -> tuple[int, int]:
        mtime = _pax_time_ns(m.pax_headers.get("mtime"), m.mtime)
        atime = _pax_time_ns(m.pax_headers.get("atime"), m.mtime)
        return _bound_ns(max(atime, mtime)), _bound_ns(mtime)

    @staticmethod
    def _xattrs(m: tarfile.TarInfo) -> list[tuple[str, bytes]]:
        out = []
        for k, v in m.pax_headers.items():
            if k.startswith(PAX_XATTR):
                attr = k[len(PAX_XATTR):]
                if attr.startswith(IGNORED_XATTR_PREFIXES):
                    log.warning("ignored overlay or trusted xattr in archive", name=m.name, xattr=attr)
                    continue
                out.append((attr, v.encode("utf-8", "surrogateescape")))
        return out

    def _set_xattr(self, target, attr: str, value: bytes, m: tarfile.TarInfo, *, regular_or_dir: bool,
                   follow: bool = True) -> None:
        try:
            os.setxattr(target, attr, value, follow_symlinks=follow)
        except OSError as exc:
            if exc.errno == errno.EPERM and attr.startswith("user.") and not regular_or_dir:
                log.warning("ignored xattr in archive", name=m.name, xattr=attr, error=str(exc))
                return
            if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
                log.warning("ignored xattr in archive", name=m.name, xattr=attr, error=str(exc))
                return
            if exc.errno in (errno.ERANGE, errno.E2BIG, errno.EINVAL):  # empty/too long name, huge value
                raise InvalidArgument(f"tar entry {quote(m.name)}: xattr {quote(attr[:300])}: {exc.strerror}") from exc
            raise

    def _meta_fd(self, fd: int, m: tarfile.TarInfo, *, is_dir: bool) -> None:
        os.fchown(fd, m.uid, m.gid)
        for attr, value in self._xattrs(m):
            self._set_xattr(fd, attr, value, m, regular_or_dir=True)
        os.fchmod(fd, m.mode & 0o7777)  # after chown, which clears setuid/setgid
        if not is_dir:
            atime, mtime = self._times(m)
            os.utime(fd, ns=(atime, mtime))

    def _meta_path(self, pfd: int, base: str, m: tarfile.TarInfo, chmod: bool = True) -> None:
        os.chown(base, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)
        st = os.stat(base, dir_fd=pfd, follow_symlinks=False)
        regular_or_dir = stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)
        for attr, value in self._xattrs(m):
            self._set_xattr(proc_path(pfd, base), attr, value, m, regular_or_dir=regular_or_dir, follow=False)
        if chmod and not stat.S_ISLNK(st.st_mode):
            fd = os.open(base, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
            try:
                os.chmod(proc_path(fd), m.mode & 0o7777)
            finally:
                os.close(fd)
        atime, mtime = self._times(m)
        os.utime(base, ns=(atime, mtime), dir_fd=pfd, follow_symlinks=False)

    def _set_dir_times(self) -> None:
        for key in sorted(self.dir_times, key=lambda k: k.count("/"), reverse=True):
            comps = key.split("/")
            try:
                pfd, _ = resolve_dir(self.root_fd, comps[:-1])
            except (Missing, InvalidArgument):
                continue
            try:
                st = os.stat(comps[-1], dir_fd=pfd, follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    os.utime(comps[-1], ns=self.dir_times[key], dir_fd=pfd, follow_symlinks=False)
            except FileNotFoundError:
                pass
            finally:
                os.close(pfd)
