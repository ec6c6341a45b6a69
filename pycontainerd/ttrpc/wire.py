"""ttrpc on the wire: frames, the Request/Response envelopes, and status codes.

A frame is ``length(4, big endian) | stream id(4, big endian) | type(1) | flags(1)``
followed by ``length`` bytes of a protobuf ``ttrpc.Request`` (type 1) or
``ttrpc.Response`` (type 2). Client streams have odd ids that increase. A message longer
than :data:`MAX_MESSAGE` (4 MiB) is discarded by the receiver and, on a server, answered
with ``RESOURCE_EXHAUSTED``.

Errors cross the wire as ``google.rpc.Status``: :func:`status_from_exception` turns a
:class:`~pycontainerd.errdefs.ContainerdError` into its code (``NotFound`` →
``NOT_FOUND`` …, anything else → ``UNKNOWN``) and :func:`exception_from_status` turns a
status back into the matching class, dropping the suffix the sender already appended
(containerd's ``errgrpc.ToNative``), so ``str(err)`` reads the same on both sides.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

from .. import errdefs
from ..sysutil.protowire import BYTES, INT64, MESSAGE, REPEATED, STRING, Status, message

# api/ttrpc/ttrpc.proto (the shim imports no google.protobuf: see pycontainerd.sysutil.protowire)
KeyValue = message("ttrpc.KeyValue", (1, "key", STRING), (2, "value", STRING))
Request = message("ttrpc.Request", (1, "service", STRING), (2, "method", STRING), (3, "payload", BYTES),
                  (4, "timeout_nano", INT64), (5, "metadata", MESSAGE | REPEATED, KeyValue))
Response = message("ttrpc.Response", (1, "status", MESSAGE, Status), (2, "payload", BYTES))

HEADER = struct.Struct(">IIBB")
HEADER_LENGTH = HEADER.size  # 10
MAX_MESSAGE = 4 << 20
TYPE_REQUEST = 1
TYPE_RESPONSE = 2

NAMESPACE_KEY = "containerd-namespace-ttrpc"
"""Metadata key containerd's ttrpc clients put the namespace under."""

CODES: dict[str, int] = {
    "OK": 0,
    "CANCELLED": 1,
    "UNKNOWN": 2,
    "INVALID_ARGUMENT": 3,
    "DEADLINE_EXCEEDED": 4,
    "NOT_FOUND": 5,
    "ALREADY_EXISTS": 6,
    "PERMISSION_DENIED": 7,
    "RESOURCE_EXHAUSTED": 8,
    "FAILED_PRECONDITION": 9,
    "ABORTED": 10,
    "OUT_OF_RANGE": 11,
    "UNIMPLEMENTED": 12,
    "INTERNAL": 13,
    "UNAVAILABLE": 14,
    "DATA_LOSS": 15,
    "UNAUTHENTICATED": 16,
}
"""google.rpc code numbers by name (the names of ``grpc.StatusCode``)."""
CODE_NAMES: dict[int, str] = {v: k for k, v in CODES.items()}


class ProtocolError(Exception):
    """The peer broke framing (a frame we cannot parse); the connection must be dropped."""


class RemoteError(errdefs.ContainerdError):
    """A status whose code has no :mod:`errdefs` class (``UNKNOWN``, ``INTERNAL`` …).

    ``code`` is the code's name for this instance; the message is the peer's, unchanged.
    """

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.context = message
        Exception.__init__(self, message or code.lower())


def socket_path(address: str) -> str:
    """The ``connect``/``bind`` path of an address: ``unix:///p`` or ``/p`` → ``/p``,
    ``@name`` or ``\\0name`` → the abstract socket ``\\0name``."""
    if address.startswith("unix://"):
        return address[len("unix://"):]
    if address.startswith("@"):
        return "\0" + address[1:]
    return address


# --- frames -------------------------------------------------------------------------------


def encode_frame(stream_id: int, mtype: int, payload: bytes, flags: int = 0) -> bytes:
    """One frame: header plus payload. Raises ValueError for a payload over 4 MiB."""
    if len(payload) > MAX_MESSAGE:
        raise ValueError(f"message length {len(payload)} exceeds maximum message size of {MAX_MESSAGE}")
    return HEADER.pack(len(payload), stream_id, mtype, flags) + payload


class Oversized:
    """Marker yielded by :class:`FrameDecoder` in place of a discarded (> 4 MiB) message."""

    __slots__ = ("length",)

    def __init__(self, length: int) -> None:
        self.length = length


class FrameDecoder:
    """Incremental frame parser: :meth:`feed` bytes as they arrive, get whole frames.

    Each frame is ``(stream_id, type, flags, payload)``; ``payload`` is an :class:`Oversized`
    for a message over :data:`MAX_MESSAGE`, whose bytes are skipped without being buffered.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._skip = 0  # bytes of an oversized message still to discard

    def feed(self, data: bytes) -> list[tuple[int, int, int, bytes | Oversized]]:
        out: list[tuple[int, int, int, bytes | Oversized]] = []
        if self._skip:
            n = min(self._skip, len(data))
            self._skip -= n
            data = data[n:]
        self._buf += data
        buf = self._buf
        pos = 0
        while len(buf) - pos >= HEADER_LENGTH:
            length, sid, mtype, flags = HEADER.unpack_from(buf, pos)
            if length > MAX_MESSAGE:
                out.append((sid, mtype, flags, Oversized(length)))
                pos += HEADER_LENGTH
                avail = len(buf) - pos
                n = min(length, avail)
                pos += n
                self._skip = length - n
                if self._skip:
                    break
                continue
            end = pos + HEADER_LENGTH + length
            if len(buf) < end:
                break
            out.append((sid, mtype, flags, bytes(buf[pos + HEADER_LENGTH:end])))
            pos = end
        if pos:
            del buf[:pos]
        return out

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete frame held back."""
        return len(self._buf)


# --- envelopes ----------------------------------------------------------------------------


def encode_request(service: str, method: str, payload: bytes, timeout_nano: int = 0,
                   metadata: Iterable[tuple[str, str]] = ()) -> bytes:
    return Request(service=service, method=method, payload=payload, timeout_nano=max(0, int(timeout_nano)),
                   metadata=[KeyValue(key=k, value=v) for k, v in metadata]).encode()


def decode_request(data: bytes) -> Request:
    """Raises :class:`~pycontainerd.sysutil.protowire.DecodeError` (a ValueError) for bytes that are not one."""
    return Request.decode(data)


def encode_response(payload: bytes = b"", status: Status | None = None) -> bytes:
    """A ``ttrpc.Response``; ``status`` is anything with ``code`` and ``message`` (an OK one
    is left out, as ttrpc does)."""
    st = None
    if status is not None and status.code != 0:
        st = Status(code=status.code, message=status.message)
    return Response(status=st, payload=payload).encode()


def decode_response(data: bytes) -> Response:
    """``status`` is None when the call succeeded."""
    return Response.decode(data)


def response_error(resp: Response) -> errdefs.ContainerdError | None:
    """The typed error a response carries, or None for a successful one."""
    if resp.status is not None and resp.status.code != 0:
        return exception_from_status(resp.status)
    return None


def metadata_dict(metadata: Sequence[KeyValue]) -> dict[str, list[str]]:
    """Request metadata as ``{key: [values…]}`` (keys may repeat)."""
    out: dict[str, list[str]] = {}
    for kv in metadata:
        out.setdefault(kv.key, []).append(kv.value)
    return out


# --- status <-> errors --------------------------------------------------------------------


def status_from_exception(exc: BaseException) -> Status:
    """The ``google.rpc.Status`` a handler's exception is answered with."""
    if isinstance(exc, errdefs.ContainerdError):
        return Status(code=CODES.get(exc.code, CODES["UNKNOWN"]), message=str(exc))
    return Status(code=CODES["UNKNOWN"], message=str(exc) or type(exc).__name__)


def status(code: str, message: str) -> Status:
    return Status(code=CODES[code], message=message)


def exception_from_status(st: Status) -> errdefs.ContainerdError:
    """The typed error for a non-OK status (see the module docstring)."""
    name = CODE_NAMES.get(st.code, "UNKNOWN")
    cls = errdefs.BY_CODE.get(name)
    if cls is None:
        return RemoteError(name, st.message)
    msg = st.message
    if msg == cls.suffix:
        msg = ""
    elif msg.endswith(": " + cls.suffix):
        msg = msg[: -len(cls.suffix) - 2]
    return cls(msg)
