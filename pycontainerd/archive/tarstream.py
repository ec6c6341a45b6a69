"""Reading a layer's tar stream: Go ``archive/tar``'s rules on top of Python's ``tarfile``.

:class:`TarFeed` parses the (already decompressed) tar in a thread of its own and hands
entries with their data to the applier (:mod:`.apply`); :class:`DigestReader` counts and
hashes every byte on the way, so the diffID covers the whole uncompressed stream.

Where the archive may end, as Go's reader (hence containerd) decides:

- at EOF on a header boundary, or at one or two zero blocks (a zero block followed by
  anything else is corrupt);
- right after an entry's data, or anywhere in the padding that rounds the data up to
  512 bytes (``tryReadFull`` in Go's ``Reader.next``). ``umoci insert`` writes such
  layers: no padding after the last file, no end-of-archive blocks.

Still corrupt (:class:`~pycontainerd.errdefs.InvalidArgument`): a header cut short, an
entry's data cut short, a bad header checksum, and (stricter than Go) an extended header
with no entry after it. ``tarfile``'s own leniency — stopping quietly at a damaged header
after the first — is replaced by these rules.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import os
import queue
import tarfile
import threading
from collections.abc import Iterator

from pycontainerd.archive.compression import Reader
from pycontainerd.errdefs import InvalidArgument, quote

_COPY_CHUNK = 1 << 20
_CHUNK = 256 * 1024  # file data per item
_BATCH_ITEMS = 64  # items per queue hand-off (or _CHUNK bytes, whichever comes first)
_QUEUE_BATCHES = 32  # at most ~16 MiB of file data in flight
_TAR_BUFSIZE = 64 * 1024
_MAX_FILE_SIZE = (1 << 63) - 1
_ZERO_BLOCK = bytes(tarfile.BLOCKSIZE)
_EXTENSION_TYPES = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE,
                    tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)


class DigestReader:
    """Counts and hashes every uncompressed byte handed to the tar reader."""

    def __init__(self, inner: Reader) -> None:
        self._inner = inner
        self.hash = hashlib.sha256()
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data = self._inner.read(n)
        if data:
            self.hash.update(data)
            self.count += len(data)
        return data

    def drain(self) -> None:
        while self.read(_COPY_CHUNK):
            pass


class _EndOfArchive(Exception):
    """The archive ended cleanly (EOF at a header boundary, or the zero blocks)."""


class _StrictTarInfo(tarfile.TarInfo):
    """A TarInfo whose header reading is as strict as Go's ``archive/tar``.

    ``tarfile`` treats a truncated or corrupt header after the first one as the end of the
    archive; Go (and so containerd) reports ``unexpected EOF`` / ``invalid tar header``.
    This reader ends only at EOF on a header boundary or at a zero block (followed by EOF
    or another zero block), never right after an extended header.
    """

    @classmethod
    def fromtarfile(cls, tf):  # type: ignore[override]
        depth = getattr(tf, "_pcd_ext_depth", 0)
        buf = tf.fileobj.read(tarfile.BLOCKSIZE)
        if not depth:
            if not buf:
                raise _EndOfArchive
            if buf == _ZERO_BLOCK:
                second = tf.fileobj.read(tarfile.BLOCKSIZE)
                if not second or second == _ZERO_BLOCK:
                    raise _EndOfArchive
                raise InvalidArgument("corrupt tar: a zero block followed by data")
        if len(buf) != tarfile.BLOCKSIZE:
            raise InvalidArgument("truncated tar: unexpected end of data in a header")
        if buf == _ZERO_BLOCK:
            raise InvalidArgument("corrupt tar: extended header not followed by an entry")
        try:
            obj = cls.frombuf(buf, tf.encoding, tf.errors)
        except tarfile.HeaderError as exc:
            raise InvalidArgument(f"corrupt tar header: {exc}") from exc
        obj.offset = tf.fileobj.tell() - tarfile.BLOCKSIZE
        if obj.type in _EXTENSION_TYPES:
            tf._pcd_ext_depth = depth + 1
            try:
                return obj._proc_member(tf)
            finally:
                tf._pcd_ext_depth = depth
        return obj._proc_member(tf)


class _IgnoredGlobalHeaders(dict):
    """``tarfile`` applies PAX *global* records (``g`` entries) to every later entry, so a
    global ``path`` would rename them all and a global ``SCHILY.xattr.*`` would set an
    xattr on every file. Go's reader, hence containerd, returns global headers as entries
    of their own and ignores them; so do we: records stored here are dropped."""

    def __setitem__(self, key, value) -> None:
        pass


def next_member(tf: tarfile.TarFile, prev: tarfile.TarInfo | None = None) -> tarfile.TarInfo | None:
    """The entry after ``prev`` (the last one returned) in the stream ``tf``, or None at the
    end of the archive.

    Whatever of ``prev``'s data was not read is skipped and must be there (a cut there is
    corrupt); the padding after it may be cut short or missing, which ends the archive
    (Go's reader: ``discard`` then ``tryReadFull``). ``tarfile`` itself would refuse that
    with "unexpected end of data".
    """
    if prev is not None and tf.firstmember is None and not _skip_to_header(tf, prev):
        return None
    try:
        member = tf.next()
    except _EndOfArchive:
        return None
    except (tarfile.TarError, ValueError, UnicodeError) as exc:
        raise InvalidArgument(f"corrupt tar: {exc}") from exc
    tf.members.clear()  # stream mode keeps every member otherwise
    return member


def _data_end(m: tarfile.TarInfo) -> int:
    """Offset in the archive of the end of ``m``'s stored data (before its padding)."""
    if m.issparse():
        return m.offset_data + sum(n for _, n in m.sparse or ())
    if m.isreg() or m.type not in tarfile.SUPPORTED_TYPES:
        return m.offset_data + m.size
    return m.offset_data


def _seekable_size(fileobj) -> int | None:
    """The size of an uncompressed, seekable archive file; None for a stream or a
    decompressor (their seeks read everything before the target)."""
    if isinstance(fileobj, (gzip.GzipFile, bz2.BZ2File, lzma.LZMAFile)):
        return None
    try:
        if not fileobj.seekable():
            return None
        here = fileobj.tell()
        size = fileobj.seek(0, os.SEEK_END)
        fileobj.seek(here)
        return size
    except (AttributeError, OSError, ValueError):
        return None


def _skip_to_header(tf: tarfile.TarFile, prev: tarfile.TarInfo) -> bool:
    """Move ``tf``'s stream to the next header; False when the stream ends in the padding."""
    fileobj = tf.fileobj
    size = _seekable_size(fileobj)
    if size is not None:  # an archive file: seek over the data instead of reading it
        if _data_end(prev) > size:
            raise InvalidArgument(f"truncated tar: unexpected end of data in {quote(prev.name)}")
        fileobj.seek(min(tf.offset, size))
        return tf.offset <= size
    pos = fileobj.tell()
    for end, in_data in ((_data_end(prev), True), (tf.offset, False)):
        while pos < end:
            got = len(fileobj.read(min(end - pos, _COPY_CHUNK)))
            if not got:
                if in_data:
                    raise InvalidArgument(f"truncated tar: unexpected end of data in {quote(prev.name)}")
                return False
            pos += got
    return True


class TarFeed:
    """Parses the tar in a thread of its own and hands members (with their data, in chunks)
    to the applier through a bounded queue, in order.

    Decompression, hashing and tar parsing then overlap with the filesystem calls, which
    dominate (creating an inode costs far more than parsing its header); both sides release
    the GIL in the expensive parts (zlib, hashlib, syscalls). At most ``_QUEUE_BATCHES``
    batches of about ``_CHUNK`` bytes are buffered. After the last entry the thread drains the rest
    of the stream through the digest, then reports the end. Any error — corrupt data, or
    the source's own — is raised in the consumer, at the position it occurred.
    """

    def __init__(self, reader: DigestReader) -> None:
        self._reader = reader
        self._queue: queue.Queue[list[tuple]] = queue.Queue(maxsize=_QUEUE_BATCHES)
        self._stop = threading.Event()
        self._batch: list[tuple] = []
        self._batch_bytes = 0
        self._pending: Iterator[tuple] = iter(())
        self._thread = threading.Thread(target=self._run, name="layer-tar-reader", daemon=True)
        self._thread.start()

    def _put(self, item: tuple, flush: bool = False) -> None:
        """Queue ``item``; items travel in batches (one queue hand-off per batch, not per
        entry: thread hand-offs cost more than parsing a header)."""
        self._batch.append(item)
        if isinstance(item[1], bytes):
            self._batch_bytes += len(item[1])
        if not flush and len(self._batch) < _BATCH_ITEMS and self._batch_bytes < _CHUNK:
            return
        batch, self._batch, self._batch_bytes = self._batch, [], 0
        while True:
            try:
                self._queue.put(batch, timeout=0.2)
                return
            except queue.Full:
                if self._stop.is_set():
                    raise _Stopped from None

    def _run(self) -> None:
        try:
            try:
                tf = tarfile.open(fileobj=self._reader, mode="r|", tarinfo=_StrictTarInfo, bufsize=_TAR_BUFSIZE,
                                  encoding="utf-8", errors="surrogateescape", format=tarfile.PAX_FORMAT,
                                  pax_headers=_IgnoredGlobalHeaders())
            except _EndOfArchive:
                tf = None  # an empty layer
            except (tarfile.TarError, ValueError, UnicodeError) as exc:
                raise InvalidArgument(f"corrupt tar: {exc}") from exc
            if tf is not None:
                with tf:
                    m = None
                    while (m := next_member(tf, m)) is not None:
                        if self._stop.is_set():
                            raise _Stopped
                        if not m.isreg():
                            self._put((m, None, False))
                            continue
                        if m.issparse():
                            self._sparse(tf, m)
                            continue
                        read = tf.fileobj.read
                        remaining = m.size
                        first = True
                        while first or remaining > 0:
                            chunk = read(min(remaining, _CHUNK)) if remaining else b""
                            if remaining and not chunk:
                                raise InvalidArgument(f"truncated tar: unexpected end of data in {quote(m.name)}")
                            remaining -= len(chunk)
                            self._put((m if first else None, chunk, remaining > 0))
                            first = False
            self._reader.drain()
            self._put((None, None, False), flush=True)
        except _Stopped:
            pass
        except BaseException as exc:  # handed to the consumer
            try:
                self._put((_FAILED, exc, False), flush=True)
            except _Stopped:
                pass

    def _sparse(self, tf: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        """A GNU sparse member: its data regions (stored back to back in the archive) as
        bytes, its holes as :class:`Hole` lengths, so that the file gets real holes and a
        few bytes of archive cannot expand into terabytes of written zeros (Go's reader
        seeks over holes when writing to a file, so containerd makes sparse files too).
        Regions must be ascending, non-overlapping and within the size (Go's
        ``validateSparseEntries``)."""
        if m.size > _MAX_FILE_SIZE:
            raise InvalidArgument(f"tar entry {quote(m.name)}: size {m.size} out of range")
        regions = [(o, n) for o, n in m.sparse or [] if n]  # GNU tar ends its map with empty ones
        pos = 0
        for offset, size in regions:
            if offset < pos or size < 0 or offset + size > m.size:  # (size 0 entries dropped above)
                raise InvalidArgument(f"tar entry {quote(m.name)}: invalid sparse map")
            pos = offset + size
        try:
            tf.fileobj.seek(m.offset_data)  # forward only: a stream
        except tarfile.StreamError as exc:
            raise InvalidArgument(f"tar entry {quote(m.name)}: corrupt sparse header: {exc}") from exc
        first, pos = True, 0
        for offset, size in regions:
            if offset > pos:
                self._put((m if first else None, Hole(offset - pos), True))
                first = False
            left = size
            while left > 0:
                chunk = tf.fileobj.read(min(left, _CHUNK))
                if not chunk:
                    raise InvalidArgument(f"truncated tar: unexpected end of data in {quote(m.name)}")
                left -= len(chunk)
                self._put((m if first else None, chunk, True))
                first = False
            pos = offset + size
        self._put((m if first else None, Hole(m.size - pos) if m.size > pos else b"", False))

    def _get(self) -> tuple:
        item = next(self._pending, None)
        if item is None:
            self._pending = iter(self._queue.get())
            item = next(self._pending)
        if item[0] is _FAILED:
            raise item[1]
        return item

    def members(self) -> Iterator[tuple[tarfile.TarInfo, Iterator[bytes]]]:
        """``(member, data chunks)`` in archive order; the chunks must be consumed before
        asking for the next member."""
        while True:
            m, chunk, more = self._get()
            if m is None:
                return
            yield m, self._chunks(chunk, more)

    def _chunks(self, first: bytes | None, more: bool) -> Iterator[bytes]:
        if first:
            yield first
        while more:
            _, chunk, more = self._get()
            yield chunk

    def close(self) -> None:
        """Stop the thread (if still reading) and wait for it."""
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.05)
            except queue.Empty:
                pass
        self._thread.join()


class _Stopped(Exception):
    pass


_FAILED = object()


class Hole(int):
    """A run of zero bytes of a sparse file, left as a hole (a length, not data)."""

