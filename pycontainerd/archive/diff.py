"""Writing the OCI layer tar of the changes between two directory trees.

:func:`write_diff` is containerd's ``archive.WriteDiff`` (continuity's ``fs.Changes`` double
walk feeding ``archive.ChangeWriter``), with one addition: when the upper tree is an
overlayfs upper dir, only that dir is walked (overlayfs already recorded the changes:
a 0/0 character device is a deletion, ``trusted.overlay.opaque=y`` an opaque directory;
``user.overlay.*`` instead when the overlay is mounted with ``userxattr``).

The tar stream
--------------
- PAX format (USTAR headers, PAX records only where needed), numeric owners only (no user
  or group names), mtimes truncated to the second, no atime/ctime — as containerd writes.
- Deterministic: both trees are walked in the same order (children sorted by the bytes of
  their names, a directory right before its children, i.e. Go's ``filepath.Walk`` order),
  and whiteouts carry mtime 0, mode 0 and owner 0:0 (containerd stamps them with the
  current time; a fixed time makes the same change set give the same diffID).
- Added and modified entries in full; a deleted path as ``<dir>/.wh.<name>`` (deleting a
  directory does not list its children); an overlay opaque directory as the directory entry
  followed by ``<dir>/.wh..wh..opq``.
- The parent directories of every change are written before it (containerd's
  ``includeParents``), so applying restores their metadata (and times).
- Hardlinks are detected by inode: the first name written carries the data, later names are
  ``LNKTYPE`` entries pointing at it; an unmodified name sharing an inode with a changed one
  is written as a link too (containerd's ``inodeRefs``).
- Extended attributes as ``SCHILY.xattr.<name>`` records, except ``trusted.*`` and
  ``user.overlay.*`` (overlayfs's own bookkeeping, never part of an image) and
  ``security.selinux`` (a host label).
  containerd writes only ``security.capability``; we keep ``user.*`` and ACLs too, which
  its applier restores.
- Sockets are skipped.

Comparison (double walk), as continuity's ``sameFile``: same inode → unchanged; otherwise
type, mode, owner, rdev and xattrs must match, and for non-directories the size and mtime
seconds; when both mtimes have zero nanoseconds the content (or symlink target) is compared,
otherwise the nanoseconds decide. A directory whose own metadata is unchanged is written
only as the parent of a change.

Overlay single walk: ``lower_root`` is only consulted to skip upper directories whose mode,
owner and mtime equal the lower ones (copied up but unchanged). An upper dir written with
``redirect_dir`` or ``metacopy`` (xattrs ``trusted.overlay.redirect`` /
``trusted.overlay.metacopy``) cannot be read on its own: :class:`FailedPrecondition`; use the
double walk over the mounted views instead. containerd mounts overlay without those
features, as do we.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from pycontainerd.archive.apply import WHITEOUT_OPAQUE, WHITEOUT_PREFIX
from pycontainerd.archive.lowers import IGNORED_XATTR_PREFIXES
from pycontainerd.archive.compression import (
    Compression,
    Writer,
    compress_stream,
    compression_for_media_type,
)
from pycontainerd.errdefs import FailedPrecondition, InvalidArgument, quote

_COPY_CHUNK = 1 << 20
_SKIP_XATTR_PREFIXES = IGNORED_XATTR_PREFIXES
_SKIP_XATTRS = ("security.selinux",)
_OVERLAY_PREFIXES = ("trusted.overlay.", "user.overlay.")  # the second with ``userxattr``

ADD, MODIFY, DELETE, UNMODIFIED = "add", "modify", "delete", "unmodified"


@dataclass(frozen=True)
class DiffResult:
    """``diff_id``/``uncompressed_size``: the tar; ``digest``/``size``: the bytes written to
    the output (compressed), i.e. the blob's descriptor; ``media_type`` matches."""

    diff_id: str
    uncompressed_size: int
    digest: str
    size: int
    media_type: str


def _as_compression(value: Compression | str) -> Compression:
    if isinstance(value, Compression):
        return value
    names = {"gzip": Compression.GZIP, "zstd": Compression.ZSTD, "": Compression.UNCOMPRESSED,
             "none": Compression.UNCOMPRESSED, "uncompressed": Compression.UNCOMPRESSED}
    if value in names:
        return names[value]
    return compression_for_media_type(value)


def write_diff(
    lower_root: str | os.PathLike[str] | None,
    upper_root: str | os.PathLike[str],
    out_stream: BinaryIO | Writer,
    compression: Compression | str = Compression.GZIP,
    *,
    overlay_upper: bool = False,
) -> DiffResult:
    """Write the layer that turns ``lower_root`` into ``upper_root`` to ``out_stream``.

    Args:
        lower_root: the lower tree (a mounted view of the parent snapshot); ``None`` or
            ``""`` for an empty lower (everything in ``upper_root`` is added).
        upper_root: the upper tree; with ``overlay_upper`` the overlayfs *upper dir* of a
            snapshot whose lower dirs make up ``lower_root``.
        out_stream: where the (compressed) layer goes; not closed.
        compression: a :class:`Compression`, ``"gzip"``/``"zstd"``/``"none"``, or a layer
            media type (unsupported → InvalidArgument).
        overlay_upper: walk only ``upper_root`` (see module doc).

    Raises:
        InvalidArgument: unsupported compression or media type.
        FailedPrecondition: an overlay upper dir using redirect_dir/metacopy.
        OSError: reading the trees or writing the output.
    """
    comp = _as_compression(compression)
    sink = _HashingSink(out_stream)
    compressor = compress_stream(sink, comp)
    tar_sink = _HashingSink(compressor)
    writer = _ChangeWriter(tar_sink, os.fspath(upper_root))
    lower = os.fspath(lower_root) if lower_root else ""
    if overlay_upper:
        _overlay_changes(lower, os.fspath(upper_root), writer)
    else:
        _double_walk(lower, os.fspath(upper_root), writer)
    writer.close()
    compressor.close()
    return DiffResult(
        diff_id="sha256:" + tar_sink.hash.hexdigest(),
        uncompressed_size=tar_sink.count,
        digest="sha256:" + sink.hash.hexdigest(),
        size=sink.count,
        media_type=comp.media_type,
    )


class _HashingSink:
    def __init__(self, out: Writer) -> None:
        self._out = out
        self.hash = hashlib.sha256()
        self.count = 0

    def write(self, data: bytes) -> int:
        if data:
            self.hash.update(data)
            self.count += len(data)
            self._out.write(data)
        return len(data)


# --- walking -----------------------------------------------------------------------------

_Entry = tuple[tuple[bytes, ...], tuple[str, ...], os.stat_result]


def _walk(root: str) -> Iterator[_Entry]:
    """Pre-order walk of ``root`` (not included), children sorted by name bytes; yields
    (sort key, relative components, lstat). Never follows symlinks."""

    def listing(rel: tuple[str, ...]) -> list[os.DirEntry[str]]:
        with os.scandir(os.path.join(root, *rel) if rel else root) as it:
            return sorted(it, key=lambda e: os.fsencode(e.name))

    stack: list[tuple[tuple[bytes, ...], tuple[str, ...], Iterator[os.DirEntry[str]]]] = [
        ((), (), iter(listing(())))
    ]
    while stack:
        key, rel, it = stack[-1]
        entry = next(it, None)
        if entry is None:
            stack.pop()
            continue
        ckey = (*key, os.fsencode(entry.name))
        crel = (*rel, entry.name)
        st = entry.stat(follow_symlinks=False)
        yield ckey, crel, st
        if stat.S_ISDIR(st.st_mode):
            stack.append((ckey, crel, iter(listing(crel))))


def _xattrs(path: str) -> dict[str, bytes]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.ENODATA):
            return {}
        raise
    out = {}
    for name in sorted(names):
        if name.startswith(_SKIP_XATTR_PREFIXES) or name in _SKIP_XATTRS:
            continue
        try:
            out[name] = os.getxattr(path, name, follow_symlinks=False)
        except OSError as exc:
            if exc.errno not in (errno.ENOTSUP, errno.ENODATA):
                raise
    return out


def _getxattr(path: str, name: str) -> bytes | None:
    try:
        return os.getxattr(path, name, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.ENODATA):
            return None
        raise


def _same_content(p1: str, p2: str) -> bool:
    fd1 = os.open(p1, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        fd2 = os.open(p2, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            while True:
                b1 = os.read(fd1, _COPY_CHUNK)
                b2 = os.read(fd2, _COPY_CHUNK)
                if b1 != b2:
                    return False
                if not b1:
                    return True
        finally:
            os.close(fd2)
    finally:
        os.close(fd1)


def _same_file(p1: str, s1: os.stat_result, p2: str, s2: os.stat_result) -> bool:
    """continuity's ``sameFile`` (with every kept xattr compared, not only capabilities)."""
    if s1.st_dev == s2.st_dev and s1.st_ino == s2.st_ino:
        return True
    if (s1.st_mode, s1.st_uid, s1.st_gid, s1.st_rdev) != (s2.st_mode, s2.st_uid, s2.st_gid, s2.st_rdev):
        return False
    if _xattrs(p1) != _xattrs(p2):
        return False
    if stat.S_ISDIR(s1.st_mode):
        return True
    if s1.st_size != s2.st_size:
        return False
    sec1, ns1 = divmod(s1.st_mtime_ns, 1_000_000_000)
    sec2, ns2 = divmod(s2.st_mtime_ns, 1_000_000_000)
    if sec1 != sec2:
        return False
    if ns1 == 0 and ns2 == 0:
        if stat.S_ISLNK(s1.st_mode):
            return os.readlink(p1) == os.readlink(p2)
        if s1.st_size == 0 or not stat.S_ISREG(s1.st_mode):
            return True
        return _same_content(p1, p2)
    return ns1 == ns2


def _double_walk(lower: str, upper: str, w: _ChangeWriter) -> None:
    """continuity's ``doubleWalkDiff``: merge two sorted walks."""
    lower_it: Iterator[_Entry] = _walk(lower) if lower else iter(())
    upper_it = _walk(upper)
    f1 = next(lower_it, None)
    f2 = next(upper_it, None)
    rmdir: tuple[bytes, ...] | None = None
    while f1 is not None or f2 is not None:
        if f1 is None:
            kind = ADD
        elif f2 is None:
            kind = DELETE
        else:
            kind = DELETE if f1[0] < f2[0] else ADD if f1[0] > f2[0] else MODIFY
        if kind == ADD:
            assert f2 is not None
            rmdir = None
            w.handle(ADD, f2[1], f2[2])
            f2 = next(upper_it, None)
        elif kind == DELETE:
            assert f1 is not None
            if rmdir is not None and f1[0][: len(rmdir)] == rmdir:
                f1 = next(lower_it, None)
                continue
            rmdir = f1[0] if stat.S_ISDIR(f1[2].st_mode) else None
            w.handle(DELETE, f1[1], None)
            f1 = next(lower_it, None)
        else:
            assert f1 is not None and f2 is not None
            p1 = os.path.join(lower, *f1[1])
            p2 = os.path.join(upper, *f2[1])
            same = _same_file(p1, f1[2], p2, f2[2])
            lower_dir, upper_dir = stat.S_ISDIR(f1[2].st_mode), stat.S_ISDIR(f2[2].st_mode)
            rmdir = f1[0] if lower_dir and not upper_dir else None
            rel, st = f2[1], f2[2]
            f1 = next(lower_it, None)
            f2 = next(upper_it, None)
            if same:
                if stat.S_ISDIR(st.st_mode) or st.st_nlink <= 1:
                    continue
                w.handle(UNMODIFIED, rel, st)
            else:
                w.handle(MODIFY, rel, st)


def _overlay_changes(lower: str, upper: str, w: _ChangeWriter) -> None:
    """Changes recorded in an overlayfs upper dir (single walk)."""
    for _, rel, st in _walk(upper):
        path = os.path.join(upper, *rel)
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
            w.handle(DELETE, rel, None)
            continue
        if any(_getxattr(path, p + x) is not None for p in _OVERLAY_PREFIXES for x in ("redirect", "metacopy")):
            raise FailedPrecondition(
                f"overlay upper {quote(path)} uses redirect_dir or metacopy: diff the mounted views instead")
        if stat.S_ISDIR(st.st_mode):
            opaque = any(_getxattr(path, p + "opaque") == b"y" for p in _OVERLAY_PREFIXES)
            if not opaque and lower:
                try:
                    ls = os.lstat(os.path.join(lower, *rel))
                except FileNotFoundError:
                    ls = None
                if (ls is not None and stat.S_ISDIR(ls.st_mode) and ls.st_mode == st.st_mode
                        and (ls.st_uid, ls.st_gid) == (st.st_uid, st.st_gid) and ls.st_mtime_ns == st.st_mtime_ns):
                    continue
            w.handle(MODIFY, rel, st)
            if opaque:
                w.opaque(rel, st)
            continue
        w.handle(ADD, rel, st)


# --- the tar side ------------------------------------------------------------------------


class _ChangeWriter:
    """containerd's ``archive.ChangeWriter``: turns changes into tar entries."""

    def __init__(self, out: _HashingSink, source: str) -> None:
        self._out = out
        self._source = source
        self._added_dirs: set[tuple[str, ...]] = set()
        self._inode_src: dict[tuple[int, int], str] = {}
        self._inode_refs: dict[tuple[int, int], list[str]] = {}

    def close(self) -> None:
        self._out.write(bytes(2 * tarfile.BLOCKSIZE))

    def _write_header(self, info: tarfile.TarInfo) -> None:
        self._out.write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))

    def _include_parents(self, rel: tuple[str, ...], is_dir: bool) -> None:
        for i in range(1, len(rel)):
            parent = rel[:i]
            if parent in self._added_dirs:
                continue
            self._added_dirs.add(parent)
            st = os.lstat(os.path.join(self._source, *parent))
            info = self._header(parent, st, os.path.join(self._source, *parent))
            self._write_header(info)
        if is_dir:
            self._added_dirs.add(rel)

    @staticmethod
    def _name(rel: tuple[str, ...]) -> str:
        return "/".join(rel)

    def _header(self, rel: tuple[str, ...], st: os.stat_result, path: str) -> tarfile.TarInfo:
        info = tarfile.TarInfo(self._name(rel))
        mode = st.st_mode
        info.mode = stat.S_IMODE(mode)
        info.uid, info.gid = st.st_uid, st.st_gid
        info.uname = info.gname = ""
        info.mtime = st.st_mtime_ns // 1_000_000_000
        info.size = 0
        if stat.S_ISDIR(mode):
            info.type = tarfile.DIRTYPE
            info.name += "/"
        elif stat.S_ISREG(mode):
            info.type = tarfile.REGTYPE
            info.size = st.st_size
        elif stat.S_ISLNK(mode):
            info.type = tarfile.SYMTYPE
            info.linkname = os.readlink(path)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif stat.S_ISFIFO(mode):
            info.type = tarfile.FIFOTYPE
        else:
            raise InvalidArgument(f"{quote(path)}: unsupported file type")
        xattrs = _xattrs(path)
        if xattrs:
            info.pax_headers = {
                "SCHILY.xattr." + k: v.decode("utf-8", "surrogateescape") for k, v in xattrs.items()
            }
        return info

    def handle(self, kind: str, rel: tuple[str, ...], st: os.stat_result | None) -> None:
        if kind == DELETE:
            wrel = (*rel[:-1], WHITEOUT_PREFIX + rel[-1])
            info = tarfile.TarInfo(self._name(wrel))
            info.type = tarfile.REGTYPE
            info.mode = 0
            info.mtime = 0
            self._include_parents(wrel, False)
            self._write_header(info)
            return
        assert st is not None
        if stat.S_ISSOCK(st.st_mode):
            return
        path = os.path.join(self._source, *rel)
        info = self._header(rel, st, path)
        name = self._name(rel)
        additional: list[str] = []
        if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
            inode = (st.st_dev, st.st_ino)
            src = self._inode_src.get(inode)
            if src is not None:
                info.type = tarfile.LNKTYPE
                info.linkname = src
                info.size = 0
            else:
                if kind == UNMODIFIED:
                    self._inode_refs.setdefault(inode, []).append(name)
                    return
                self._inode_src[inode] = name
                additional = self._inode_refs.pop(inode, [])
        elif kind == UNMODIFIED:
            return
        self._include_parents(rel, stat.S_ISDIR(st.st_mode))
        self._write_header(info)
        if info.type == tarfile.REGTYPE and info.size > 0:
            self._copy(path, info.size)
        for extra in additional:
            link = tarfile.TarInfo(extra)
            link.type = tarfile.LNKTYPE
            link.linkname = name
            link.mode, link.uid, link.gid, link.mtime = info.mode, info.uid, info.gid, info.mtime
            link.uname = link.gname = ""
            link.pax_headers = dict(info.pax_headers)
            self._include_parents(tuple(extra.split("/")), False)
            self._write_header(link)

    def opaque(self, rel: tuple[str, ...], st: os.stat_result) -> None:
        """``<dir>/.wh..wh..opq`` after the directory entry (moby's overlay converter)."""
        info = tarfile.TarInfo(self._name((*rel, WHITEOUT_OPAQUE)))
        info.type = tarfile.REGTYPE
        info.mode = stat.S_IMODE(st.st_mode) & 0o777
        info.uid, info.gid = st.st_uid, st.st_gid
        info.uname = info.gname = ""
        info.mtime = st.st_mtime_ns // 1_000_000_000
        self._write_header(info)

    def _copy(self, path: str, size: int) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            remaining = size
            while remaining:
                chunk = os.read(fd, min(remaining, _COPY_CHUNK))
                if not chunk:
                    raise OSError(errno.EIO, f"{path}: file shrank while writing the diff (short write)")
                self._out.write(chunk)
                remaining -= len(chunk)
        finally:
            os.close(fd)
        pad = -size % tarfile.BLOCKSIZE
        if pad:
            self._out.write(bytes(pad))
