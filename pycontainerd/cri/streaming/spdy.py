"""SPDY/3.1 framing, sans-IO: frames as dataclasses, :func:`encode` to bytes and a
:class:`FrameReader` that cuts a byte stream into frames. Header blocks are zlib-compressed
with SPDY/3's dictionary, one compression context per direction for the whole connection
(:class:`HeaderCodec`).

Spec: SPDY Protocol Draft 3.1 (chromium.org). Wire shapes (big endian)::

    control frame  |1| version(15) | type(16) | flags(8) | length(24) | data
    data frame     |0| stream id(31)          | flags(8) | length(24) | data

    SYN_STREAM(1)     stream id(31) assoc id(31) pri(3)+unused(5) slot(8) header block
    SYN_REPLY(2)      stream id(31) header block
    RST_STREAM(3)     stream id(31) status(32)
    SETTINGS(4)       count(32) { flags(8) id(24) value(32) }*
    PING(6)           id(32)
    GOAWAY(7)         last good stream id(31) status(32)
    HEADERS(8)        stream id(31) header block
    WINDOW_UPDATE(9)  stream id(31) delta(31)    (stream 0: the session window, 3.1)

    header block (before compression): count(32) { len(32) name len(32) value }*
    (several values of one name are joined with NUL)

Flags: FIN 0x01 (control and data), UNIDIRECTIONAL 0x02 (SYN_STREAM). Errors in the
input raise :class:`SpdyProtocolError`.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

VERSION = 3
FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02
MAX_LENGTH = (1 << 24) - 1
DEFAULT_WINDOW = 64 * 1024
"""The initial stream and session window of SPDY/3.1 (bytes)."""

SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9

# RST_STREAM status codes
PROTOCOL_ERROR, INVALID_STREAM, REFUSED_STREAM, UNSUPPORTED_VERSION, CANCEL, INTERNAL_ERROR, \
    FLOW_CONTROL_ERROR, STREAM_IN_USE, STREAM_ALREADY_CLOSED = range(1, 10)

SETTINGS_MAX_CONCURRENT_STREAMS = 4
SETTINGS_INITIAL_WINDOW_SIZE = 7

_WORDS = (
    "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset", "accept-encoding",
    "accept-language", "accept-ranges", "age", "allow", "authorization", "cache-control", "connection",
    "content-base", "content-encoding", "content-language", "content-length", "content-location",
    "content-md5", "content-range", "content-type", "date", "etag", "expect", "expires", "from", "host",
    "if-match", "if-modified-since", "if-none-match", "if-range", "if-unmodified-since", "last-modified",
    "location", "max-forwards", "pragma", "proxy-authenticate", "proxy-authorization", "range", "referer",
    "retry-after", "server", "te", "trailer", "transfer-encoding", "upgrade", "user-agent", "vary", "via",
    "warning", "www-authenticate", "method", "get", "status", "200 OK", "version", "HTTP/1.1", "url", "public",
    "set-cookie", "keep-alive", "origin",
)
_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized"
    "403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable"
    "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
    "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
    "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
DICTIONARY = b"".join(struct.pack(">I", len(w)) + w.encode() for w in _WORDS) + _TAIL.encode()
"""The zlib dictionary of SPDY/3 header blocks (1423 bytes): length-prefixed header names
and common values, then a run of status codes, reason phrases, dates and media types."""


class SpdyProtocolError(Exception):
    """The peer sent something that is not SPDY/3.1 (bad version, truncated or oversized
    frame, undecodable header block)."""


Headers = dict[str, list[str]]
"""Header block: lower-case names → values (one entry per NUL-separated value)."""


@dataclass
class DataFrame:
    stream_id: int
    data: bytes = b""
    flags: int = 0

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


@dataclass
class SynStream:
    stream_id: int
    headers: Headers = field(default_factory=dict)
    flags: int = 0
    associated_id: int = 0
    priority: int = 0
    slot: int = 0

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


@dataclass
class SynReply:
    stream_id: int
    headers: Headers = field(default_factory=dict)
    flags: int = 0

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


@dataclass
class RstStream:
    stream_id: int
    status: int
    flags: int = 0


@dataclass
class Settings:
    values: list[tuple[int, int, int]] = field(default_factory=list)   # (flags, id, value)
    flags: int = 0


@dataclass
class Ping:
    ping_id: int
    flags: int = 0


@dataclass
class GoAway:
    last_good_stream_id: int
    status: int = 0
    flags: int = 0


@dataclass
class HeadersFrame:
    stream_id: int
    headers: Headers = field(default_factory=dict)
    flags: int = 0

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


@dataclass
class WindowUpdate:
    stream_id: int
    delta: int
    flags: int = 0


Frame = DataFrame | SynStream | SynReply | RstStream | Settings | Ping | GoAway | HeadersFrame | WindowUpdate


class HeaderCodec:
    """One direction's zlib context for header blocks (SPDY keeps it for the connection's
    life: every block is a sync-flushed continuation of the previous ones)."""

    def __init__(self) -> None:
        self._deflate = zlib.compressobj(zlib.Z_BEST_COMPRESSION, zlib.DEFLATED, 15, 9, zlib.Z_DEFAULT_STRATEGY,
                                         DICTIONARY)
        self._inflate = zlib.decompressobj(15, DICTIONARY)

    def compress(self, headers: Headers) -> bytes:
        raw = bytearray(struct.pack(">I", len(headers)))
        for name, values in headers.items():
            n = name.lower().encode()
            v = b"\x00".join(x.encode() for x in values)
            raw += struct.pack(">I", len(n)) + n + struct.pack(">I", len(v)) + v
        return self._deflate.compress(bytes(raw)) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    def decompress(self, block: bytes) -> Headers:
        try:
            raw = self._inflate.decompress(block)
        except zlib.error as exc:
            raise SpdyProtocolError(f"undecodable header block: {exc}") from exc
        return parse_header_block(raw)


def parse_header_block(raw: bytes) -> Headers:
    """Decode an uncompressed header block. Raises :class:`SpdyProtocolError`."""
    try:
        (count,) = struct.unpack_from(">I", raw, 0)
        pos = 4
        out: Headers = {}
        for _ in range(count):
            (n,) = struct.unpack_from(">I", raw, pos)
            pos += 4
            if n == 0 or pos + n > len(raw):
                raise SpdyProtocolError("bad header name length")
            name = raw[pos:pos + n].decode()
            pos += n
            (v,) = struct.unpack_from(">I", raw, pos)
            pos += 4
            if pos + v > len(raw):
                raise SpdyProtocolError("bad header value length")
            value = raw[pos:pos + v].decode()
            pos += v
            out.setdefault(name.lower(), []).extend(value.split("\x00"))
        return out
    except (struct.error, UnicodeDecodeError) as exc:
        raise SpdyProtocolError(f"malformed header block: {exc}") from exc


def _control(ftype: int, flags: int, payload: bytes) -> bytes:
    if len(payload) > MAX_LENGTH:
        raise SpdyProtocolError("control frame too large")
    return struct.pack(">HHI", 0x8000 | VERSION, ftype, (flags << 24) | len(payload)) + payload


def encode(frame: Frame, codec: HeaderCodec | None = None) -> bytes:
    """The bytes of ``frame``; frames with headers need the sender's ``codec``."""
    if isinstance(frame, DataFrame):
        if len(frame.data) > MAX_LENGTH:
            raise SpdyProtocolError("data frame too large")
        return struct.pack(">II", frame.stream_id & 0x7FFFFFFF, (frame.flags << 24) | len(frame.data)) + frame.data
    if isinstance(frame, SynStream):
        assert codec is not None
        head = struct.pack(">IIBB", frame.stream_id & 0x7FFFFFFF, frame.associated_id & 0x7FFFFFFF,
                           (frame.priority & 7) << 5, frame.slot)
        return _control(SYN_STREAM, frame.flags, head + codec.compress(frame.headers))
    if isinstance(frame, SynReply):
        assert codec is not None
        return _control(SYN_REPLY, frame.flags,
                        struct.pack(">I", frame.stream_id & 0x7FFFFFFF) + codec.compress(frame.headers))
    if isinstance(frame, HeadersFrame):
        assert codec is not None
        return _control(HEADERS, frame.flags,
                        struct.pack(">I", frame.stream_id & 0x7FFFFFFF) + codec.compress(frame.headers))
    if isinstance(frame, RstStream):
        return _control(RST_STREAM, frame.flags, struct.pack(">II", frame.stream_id & 0x7FFFFFFF, frame.status))
    if isinstance(frame, Settings):
        body = struct.pack(">I", len(frame.values)) + b"".join(
            struct.pack(">II", (fl << 24) | (sid & 0xFFFFFF), val) for fl, sid, val in frame.values)
        return _control(SETTINGS, frame.flags, body)
    if isinstance(frame, Ping):
        return _control(PING, frame.flags, struct.pack(">I", frame.ping_id))
    if isinstance(frame, GoAway):
        return _control(GOAWAY, frame.flags, struct.pack(">II", frame.last_good_stream_id & 0x7FFFFFFF,
                                                          frame.status))
    if isinstance(frame, WindowUpdate):
        return _control(WINDOW_UPDATE, frame.flags, struct.pack(">II", frame.stream_id & 0x7FFFFFFF,
                                                                frame.delta & 0x7FFFFFFF))
    raise TypeError(f"not a SPDY frame: {frame!r}")


class FrameReader:
    """Feed bytes, get frames: ``reader.feed(data)`` returns every complete frame so far.

    ``codec`` decodes the peer's header blocks. Unknown control frame types (CREDENTIAL,
    NOOP) are skipped, as SPDY/3 asks. ``max_length`` bounds a frame's payload.
    """

    def __init__(self, codec: HeaderCodec | None = None, max_length: int = MAX_LENGTH) -> None:
        self.codec = codec or HeaderCodec()
        self.max_length = max_length
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        out: list[Frame] = []
        while len(self._buf) >= 8:
            w1, w2 = struct.unpack_from(">II", self._buf, 0)
            length = w2 & 0xFFFFFF
            flags = w2 >> 24
            if length > self.max_length:
                raise SpdyProtocolError(f"frame of {length} bytes exceeds the limit of {self.max_length}")
            if len(self._buf) < 8 + length:
                break
            payload = bytes(self._buf[8:8 + length])
            del self._buf[:8 + length]
            if w1 & 0x80000000:
                version = (w1 >> 16) & 0x7FFF
                if version != VERSION:
                    raise SpdyProtocolError(f"unsupported SPDY version {version}")
                frame = self._control(w1 & 0xFFFF, flags, payload)
                if frame is not None:
                    out.append(frame)
            else:
                out.append(DataFrame(w1 & 0x7FFFFFFF, payload, flags))
        return out

    def _control(self, ftype: int, flags: int, p: bytes) -> Frame | None:
        try:
            if ftype == SYN_STREAM:
                sid, assoc, pri, slot = struct.unpack_from(">IIBB", p, 0)
                return SynStream(sid & 0x7FFFFFFF, self.codec.decompress(p[10:]), flags, assoc & 0x7FFFFFFF,
                                 pri >> 5, slot)
            if ftype == SYN_REPLY:
                (sid,) = struct.unpack_from(">I", p, 0)
                return SynReply(sid & 0x7FFFFFFF, self.codec.decompress(p[4:]), flags)
            if ftype == HEADERS:
                (sid,) = struct.unpack_from(">I", p, 0)
                return HeadersFrame(sid & 0x7FFFFFFF, self.codec.decompress(p[4:]), flags)
            if ftype == RST_STREAM:
                sid, status = struct.unpack_from(">II", p, 0)
                return RstStream(sid & 0x7FFFFFFF, status, flags)
            if ftype == SETTINGS:
                (count,) = struct.unpack_from(">I", p, 0)
                if 4 + 8 * count > len(p):
                    raise SpdyProtocolError("truncated SETTINGS frame")
                values = []
                for i in range(count):
                    a, val = struct.unpack_from(">II", p, 4 + 8 * i)
                    values.append((a >> 24, a & 0xFFFFFF, val))
                return Settings(values, flags)
            if ftype == PING:
                return Ping(struct.unpack_from(">I", p, 0)[0], flags)
            if ftype == GOAWAY:
                if len(p) >= 8:
                    sid, status = struct.unpack_from(">II", p, 0)
                else:                                   # SPDY/2-sized GOAWAY: no status
                    (sid,), status = struct.unpack_from(">I", p, 0), 0
                return GoAway(sid & 0x7FFFFFFF, status, flags)
            if ftype == WINDOW_UPDATE:
                sid, delta = struct.unpack_from(">II", p, 0)
                return WindowUpdate(sid & 0x7FFFFFFF, delta & 0x7FFFFFFF, flags)
        except struct.error as exc:
            raise SpdyProtocolError(f"truncated control frame of type {ftype}") from exc
        return None


__all__ = [
    "DEFAULT_WINDOW", "DICTIONARY", "FLAG_FIN", "FLAG_UNIDIRECTIONAL", "DataFrame", "Frame", "FrameReader", "GoAway",
    "HeaderCodec", "Headers", "HeadersFrame", "Ping", "RstStream", "Settings", "SpdyProtocolError", "SynReply",
    "SynStream", "WindowUpdate", "encode", "parse_header_block",
]
