"""Layer compression: media types, detection by magic bytes, streaming readers and writers.

Reading: the media type decides only *whether* a blob is a layer this applier reads; how
it is compressed is always decided by its magic bytes (containerd's ``DecompressStream``):
gzip ``1f 8b``, zstd ``28 b5 2f fd`` (or a skippable frame first), else a plain tar.
Registries and tools mislabel layers (gzip labelled ``…layer.v1.tar``, zstd labelled
``+gzip``); containerd 1.6 reads an OCI ``…v1.tar`` label as is and so fails on a gzip blob
there, we do not. A blob is read by its content either way and its diffID is still checked
against the image config by the unpacker. Media types:

=====================================================================  ====================
media type                                                             accepted
=====================================================================  ====================
``application/vnd.oci.image.layer.v1.tar`` (and ``nondistributable``)  yes
``…layer.v1.tar+gzip`` / ``+zstd`` (and ``nondistributable``)          yes
``application/vnd.docker.image.rootfs.diff.tar.gzip`` (and foreign)    yes
``application/vnd.docker.image.rootfs.diff.tar`` (and foreign)         yes
anything else (``+encrypted``, unknown, empty)                         InvalidArgument
=====================================================================  ====================

Every reader here is strict where Python's defaults are lenient: a gzip or zstd
stream that ends before its end-of-stream marker, a bad CRC, or garbage after the last
member raises :class:`~pycontainerd.errdefs.InvalidArgument`. An :class:`OSError` from
the *source* itself (the content store) is passed through unchanged, so a disk error is
not reported as a corrupt layer.

Writing: gzip at level 6 (Go's ``compress/gzip`` default, which containerd uses) with a
fixed header (no name, mtime 0), zstd at level 3 (the default of the zstd library
containerd uses). Output is deterministic for a given input.
"""

from __future__ import annotations

import enum
import gzip
import zlib
from typing import BinaryIO, Protocol

import zstandard

from pycontainerd.errdefs import InvalidArgument, quote

# --- media types -------------------------------------------------------------------------

MEDIA_TYPE_LAYER = "application/vnd.oci.image.layer.v1.tar"
MEDIA_TYPE_LAYER_GZIP = MEDIA_TYPE_LAYER + "+gzip"
MEDIA_TYPE_LAYER_ZSTD = MEDIA_TYPE_LAYER + "+zstd"
MEDIA_TYPE_LAYER_NONDIST = "application/vnd.oci.image.layer.nondistributable.v1.tar"
MEDIA_TYPE_LAYER_NONDIST_GZIP = MEDIA_TYPE_LAYER_NONDIST + "+gzip"
MEDIA_TYPE_LAYER_NONDIST_ZSTD = MEDIA_TYPE_LAYER_NONDIST + "+zstd"
MEDIA_TYPE_DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
MEDIA_TYPE_DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MEDIA_TYPE_DOCKER_LAYER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar"
MEDIA_TYPE_DOCKER_LAYER_FOREIGN_GZIP = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

GZIP_LEVEL = 6
"""Go's ``gzip.DefaultCompression`` (flate level 6), what containerd's ``CompressStream`` uses."""
ZSTD_LEVEL = 3
"""klauspost/compress ``zstd.SpeedDefault``, roughly zstd level 3."""

_CHUNK = 256 * 1024


class Compression(enum.Enum):
    """A layer's compression, named like containerd's ``compression.Compression``."""

    UNCOMPRESSED = "uncompressed"
    GZIP = "gzip"
    ZSTD = "zstd"

    @property
    def extension(self) -> str:
        return {"gzip": "gz", "zstd": "zst"}.get(self.value, "")

    @property
    def media_type(self) -> str:
        """The OCI layer media type for a tar with this compression."""
        return {
            Compression.UNCOMPRESSED: MEDIA_TYPE_LAYER,
            Compression.GZIP: MEDIA_TYPE_LAYER_GZIP,
            Compression.ZSTD: MEDIA_TYPE_LAYER_ZSTD,
        }[self]


def _split_media_type(media_type: str) -> tuple[str, list[str]]:
    base, *ext = media_type.split(";", 1)[0].strip().split("+")
    return base, ext


def diff_compression(media_type: str) -> str:
    """containerd's ``images.DiffCompression``: ``""`` (a plain tar, read as is), ``"gzip"``,
    ``"zstd"`` or ``"unknown"`` (may be compressed: detect).

    Raises:
        InvalidArgument: not a layer media type this applier can read (containerd: "no
            processor for media-type"), including wrapped types such as ``+encrypted``.
    """
    base, ext = _split_media_type(media_type or "")
    if base in (MEDIA_TYPE_DOCKER_LAYER, MEDIA_TYPE_DOCKER_LAYER_FOREIGN) and not ext:
        return "unknown"
    if base in (MEDIA_TYPE_DOCKER_LAYER_GZIP, MEDIA_TYPE_DOCKER_LAYER_FOREIGN_GZIP) and not ext:
        return "gzip"
    if base in (MEDIA_TYPE_LAYER, MEDIA_TYPE_LAYER_NONDIST):
        if not ext:
            return ""
        if ext == ["gzip"]:
            return "gzip"
        if ext == ["zstd"]:
            return "zstd"
    raise InvalidArgument(f"unsupported diff media type {quote(media_type)}")


def compression_for_media_type(media_type: str) -> Compression:
    """The compression to *write* for ``media_type`` (``+gzip``, ``+zstd``, plain tar).

    Raises:
        InvalidArgument: unsupported media type (containerd: "unsupported diff media type").
    """
    kind = diff_compression(media_type)
    if kind == "unknown":
        return Compression.UNCOMPRESSED
    return Compression(kind) if kind else Compression.UNCOMPRESSED


# --- detection ---------------------------------------------------------------------------

_GZIP_MAGIC = b"\x1f\x8b\x08"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_ZSTD_SKIPPABLE_MASK = 0xFFFFFFF0
_ZSTD_SKIPPABLE_START = 0x184D2A50


def detect_compression(head: bytes) -> Compression:
    """Compression of a stream whose first bytes are ``head`` (containerd's
    ``DetectCompression``: gzip magic, zstd magic or a zstd skippable frame)."""
    if head.startswith(_GZIP_MAGIC):
        return Compression.GZIP
    if head.startswith(_ZSTD_MAGIC):
        return Compression.ZSTD
    if len(head) >= 8 and int.from_bytes(head[:4], "little") & _ZSTD_SKIPPABLE_MASK == _ZSTD_SKIPPABLE_START:
        return Compression.ZSTD
    return Compression.UNCOMPRESSED


# --- reading -----------------------------------------------------------------------------


class Reader(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class SourceError(Exception):
    """Internal: an exception raised by the *source* stream, carried through a decompressor
    so that it is not mistaken for corrupt data. :func:`open_layer` readers unwrap it."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__(str(exc))
        self.exc = exc


class _Source:
    """The raw layer stream with a peek buffer; exceptions are wrapped in SourceError."""

    def __init__(self, raw: BinaryIO | Reader) -> None:
        self._raw = raw
        self._head = b""

    def peek(self, n: int) -> bytes:
        while len(self._head) < n:
            chunk = self._read_raw(n - len(self._head))
            if not chunk:
                break
            self._head += chunk
        return self._head[:n]

    def _read_raw(self, n: int) -> bytes:
        try:
            return self._raw.read(n)
        except Exception as exc:
            raise SourceError(exc) from exc

    def read(self, n: int = -1) -> bytes:
        if self._head:
            if n < 0 or n >= len(self._head):
                head, self._head = self._head, b""
                if n < 0:
                    return head + self._read_raw(-1)
                return head
            head, self._head = self._head[:n], self._head[n:]
            return head
        return self._read_raw(n)


class _ZstdReader:
    """Streaming zstd decoder over all frames (skippable ones included) that, unlike
    ``zstandard``'s stream reader, refuses a stream cut inside a frame.

    Compressed input is fed in small pieces so that one call's output stays bounded
    (a zstd block of a few bytes may expand to 128 KiB)."""

    _FEED = 2048

    def __init__(self, src: _Source) -> None:
        self._src = src
        self._dctx = zstandard.ZstdDecompressor()
        self._obj = self._dctx.decompressobj()
        self._started = False  # the current frame has received input
        self._pending = b""  # compressed input not yet fed
        self._out = bytearray()
        self._eof = False

    def _fill(self, want: int) -> None:
        while len(self._out) < want and not self._eof:
            if not self._pending:
                self._pending = self._src.read(_CHUNK)
                if not self._pending:
                    if self._started:
                        raise InvalidArgument("zstd stream: unexpected end of data inside a frame")
                    self._eof = True
                    return
            piece, self._pending = self._pending[: self._FEED], self._pending[self._FEED :]
            self._started = True
            self._out += self._obj.decompress(piece)
            if self._obj.eof:
                rest = self._obj.unused_data
                self._obj = self._dctx.decompressobj()
                self._started = False
                self._pending = rest + self._pending

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            out = bytearray()
            while chunk := self.read(_CHUNK):
                out += chunk
            return bytes(out)
        self._fill(n)
        data = bytes(self._out[:n])
        del self._out[:n]
        return data


class _Strict:
    """Turns decoder failures into InvalidArgument and unwraps source errors."""

    def __init__(self, inner: Reader, what: str) -> None:
        self._inner = inner
        self._what = what

    def read(self, n: int = -1) -> bytes:
        try:
            return self._inner.read(n)
        except SourceError as exc:
            raise exc.exc from None
        except InvalidArgument:
            raise
        except EOFError as exc:
            raise InvalidArgument(f"{self._what} stream: unexpected end of data ({exc})") from exc
        except (OSError, zlib.error, zstandard.ZstdError, ValueError) as exc:
            raise InvalidArgument(f"{self._what} stream: corrupt data ({exc})") from exc


def decompress_stream(raw: BinaryIO | Reader, compression: Compression | None = None) -> tuple[Reader, Compression]:
    """A reader of the uncompressed bytes of ``raw`` and the compression found.

    With ``compression=None`` the compression is detected from the magic bytes (containerd's
    ``DecompressStream``); otherwise ``raw`` is read as ``compression`` without looking.
    Reads from the returned reader raise InvalidArgument for corrupt or truncated data.
    """
    src = _Source(raw)
    if compression is None:
        try:
            compression = detect_compression(src.peek(10))
        except SourceError as exc:
            raise exc.exc from None
    if compression is Compression.GZIP:
        return _Strict(gzip.GzipFile(fileobj=src, mode="rb"), "gzip"), compression  # type: ignore[arg-type]
    if compression is Compression.ZSTD:
        return _Strict(_ZstdReader(src), "zstd"), compression
    return _Strict(src, "tar"), compression


def open_layer(raw: BinaryIO | Reader, media_type: str | None) -> tuple[Reader, Compression]:
    """A reader of the uncompressed tar of a layer blob of ``media_type`` (``None``: not
    known), decompressed by what its magic bytes say, whatever the label (module doc).

    Raises:
        InvalidArgument: unsupported media type.
    """
    if media_type is not None:
        diff_compression(media_type)  # refuses what is not a layer media type
    return decompress_stream(raw)


# --- writing -----------------------------------------------------------------------------


class Writer(Protocol):
    def write(self, data: bytes, /) -> int | None: ...


class _GzipWriter:
    def __init__(self, out: Writer, level: int) -> None:
        self._out = out
        # wbits 31: a gzip wrapper with mtime 0, no file name (deterministic), like Go's.
        self._z = zlib.compressobj(level, zlib.DEFLATED, 31)

    def write(self, data: bytes) -> int:
        if data:
            chunk = self._z.compress(data)
            if chunk:
                self._out.write(chunk)
        return len(data)

    def close(self) -> None:
        self._out.write(self._z.flush(zlib.Z_FINISH))


class _ZstdWriter:
    def __init__(self, out: Writer, level: int) -> None:
        self._out = out
        self._c = zstandard.ZstdCompressor(level=level).compressobj()

    def write(self, data: bytes) -> int:
        if data:
            chunk = self._c.compress(data)
            if chunk:
                self._out.write(chunk)
        return len(data)

    def close(self) -> None:
        self._out.write(self._c.flush(zstandard.COMPRESSOBJ_FLUSH_FINISH))


class _PlainWriter:
    def __init__(self, out: Writer) -> None:
        self._out = out

    def write(self, data: bytes) -> int:
        if data:
            self._out.write(data)
        return len(data)

    def close(self) -> None:
        pass


def compress_stream(out: Writer, compression: Compression, *, level: int | None = None):
    """A writer (``write``, ``close``) that compresses into ``out``; ``close`` finishes the
    compressed stream but does not close ``out``."""
    if compression is Compression.GZIP:
        return _GzipWriter(out, GZIP_LEVEL if level is None else level)
    if compression is Compression.ZSTD:
        return _ZstdWriter(out, ZSTD_LEVEL if level is None else level)
    return _PlainWriter(out)
