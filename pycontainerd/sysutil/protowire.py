"""Protocol Buffers (proto3) on the wire, by hand: just enough for ttrpc and the shim.

The shim is a process per container and its memory is a benchmark figure, so it does not
load ``google.protobuf`` (its runtime, descriptor pool and generated modules cost ~5 MiB
per process). It speaks the few messages it needs with this module instead: a message is
a small class made by :func:`message` from a list of fields — ``(number, name, kind)`` or
``(number, name, kind, message class)`` — taken from the ``.proto`` files under ``api/``
(``tests/unit/test_shim_proto.py`` checks every class against the generated descriptors
and round-trips it through ``google.protobuf``).

Encoding follows https://protobuf.dev/programming-guides/encoding/ for proto3:

- scalars equal to their default (``""``, ``b""``, ``0``, ``False``) are not written; a
  message field is written when it is not ``None`` (even when empty);
- ``int32``/``int64`` (and enums) are varints of the two's complement in 64 bits (a
  negative number takes 10 bytes); ``uint32`` decodes to the low 32 bits;
- repeated numbers are written packed and read packed or not; repeated strings, bytes
  and messages are one record each; ``map<string, string>`` is a repeated entry message
  (key = 1, value = 2);
- fields are written in field-number order; on reading, unknown fields (any wire type,
  groups included) and fields whose wire type does not match are skipped, a message field
  that occurs twice is merged, a scalar's last occurrence wins.

Malformed input (truncated, a varint over 10 bytes, a field number out of range, a bad wire type,
invalid UTF-8 in a string) raises :class:`DecodeError` (a ``ValueError``).

Example::

    Point = message("example.Point", (1, "x", INT64), (2, "label", STRING))
    data = Point(x=-1, label="a").encode()
    assert Point.decode(data) == Point(x=-1, label="a")
"""

from __future__ import annotations

STRING, BYTES, BOOL, UINT32, UINT64, INT32, INT64, MESSAGE, MAP = range(9)
"""Field kinds. ``enum`` fields are INT32; ``MAP`` is ``map<string, string>``."""
REPEATED = 16
"""Or-ed with a kind: a repeated field (a list)."""

_MASK64 = (1 << 64) - 1
_VARINT_KINDS = frozenset({BOOL, UINT32, UINT64, INT32, INT64})


class DecodeError(ValueError):
    """The bytes are not a valid encoding of the message."""


def encode_varint(n: int) -> bytes:
    """``n`` (0 ≤ n < 2**64; a negative int64 is taken modulo 2**64) as a base-128 varint."""
    n &= _MASK64
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def decode_varint(data: bytes, pos: int) -> tuple[int, int]:
    """``(value, position after it)``; raises :class:`DecodeError` when truncated or too long."""
    result = shift = 0
    end = len(data)
    while True:
        if pos >= end:
            raise DecodeError("truncated varint")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result & _MASK64, pos
        shift += 7
        if shift >= 70:
            raise DecodeError("varint longer than 10 bytes")


def skip_field(data: bytes, pos: int, wire_type: int, number: int = 0) -> int:
    """The position after the value of a field whose key has just been read."""
    if wire_type == 0:
        return decode_varint(data, pos)[1]
    if wire_type == 1:
        pos += 8
    elif wire_type == 2:
        length, pos = decode_varint(data, pos)
        pos += length
    elif wire_type == 5:
        pos += 4
    elif wire_type == 3:  # a group: skip fields up to its end-group key
        while True:
            key, pos = decode_varint(data, pos)
            if key & 7 == 4:
                if key >> 3 != number:
                    raise DecodeError("mismatched end-group")
                return pos
            pos = skip_field(data, pos, key & 7, key >> 3)
    else:
        raise DecodeError(f"invalid wire type {wire_type}")
    if pos > len(data):
        raise DecodeError("truncated field")
    return pos


def _scalar(kind: int, v: int) -> int | bool:
    if kind == UINT32:
        return v & 0xFFFFFFFF
    if kind == INT64:
        return v - (1 << 64) if v >> 63 else v
    if kind == INT32:
        v &= 0xFFFFFFFF
        return v - (1 << 32) if v >> 31 else v
    if kind == BOOL:
        return v != 0
    return v  # UINT64


def _string(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(f"string field is not valid UTF-8: {exc}") from None


class Message:
    """Base of the classes :func:`message` makes; fields are plain attributes.

    ``Cls(**fields)`` (missing ones get their defaults: ``""``, ``b""``, ``0``, ``False``,
    ``None`` for a message, a new list / dict for a repeated / map field);
    ``obj.encode() -> bytes``; ``Cls.decode(bytes) -> Cls``; ``==`` compares fields.
    """

    __slots__ = ()
    NAME = ""
    """The full proto name (``containerd.task.v2.StateRequest``): an ``Any``'s type URL."""
    FIELDS: tuple = ()
    _ENC: tuple = ()
    _BY_NUM: dict = {}

    def __init__(self, **kw: object) -> None:
        for _num, name, kind, _sub in self.FIELDS:
            if name in kw:
                v = kw.pop(name)
                if kind & REPEATED:
                    v = list(v)  # type: ignore[call-overload]
                elif kind == MAP:
                    v = dict(v)  # type: ignore[call-overload]
            else:
                v = _default(kind)
            object.__setattr__(self, name, v)
        if kw:
            raise TypeError(f"{type(self).__name__} has no field {next(iter(kw))!r}")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, f[1]) == getattr(other, f[1]) for f in self.FIELDS)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        parts = []
        for _num, name, kind, _sub in self.FIELDS:
            v = getattr(self, name)
            if v != _default(kind):
                parts.append(f"{name}={v!r}")
        return f"{type(self).__name__}({', '.join(parts)})"

    # --- encoding ---------------------------------------------------------------------------

    def encode(self) -> bytes:
        out = bytearray()
        self._encode_to(out)
        return bytes(out)

    def _encode_to(self, out: bytearray) -> None:
        for name, kind, tag, sub in self._ENC:
            v = getattr(self, name)
            if kind & REPEATED:
                if not v:
                    continue
                base = kind & ~REPEATED
                if base in _VARINT_KINDS:  # packed
                    body = b"".join(encode_varint(int(x)) for x in v)
                    out += tag
                    out += encode_varint(len(body))
                    out += body
                else:
                    for x in v:
                        out += tag
                        _encode_len(out, base, x)
            elif kind == MESSAGE:
                if v is not None:
                    out += tag
                    _encode_len(out, MESSAGE, v)
            elif kind == MAP:
                for k, val in v.items():
                    entry = bytearray()
                    _encode_len(entry, STRING, k, b"\x0a")
                    _encode_len(entry, STRING, val, b"\x12")
                    out += tag
                    out += encode_varint(len(entry))
                    out += entry
            elif v:
                out += tag
                if kind in _VARINT_KINDS:
                    out += encode_varint(int(v))
                else:
                    _encode_len(out, kind, v)

    # --- decoding ---------------------------------------------------------------------------

    @classmethod
    def decode(cls, data: bytes) -> Message:
        """Raises :class:`DecodeError` (see the module docstring)."""
        m = cls()
        m.merge(data)
        return m

    def merge(self, data: bytes) -> None:
        """Read ``data`` into this message (protobuf's ``MergeFromString``)."""
        data = bytes(data)
        by_num = self._BY_NUM
        pos, end = 0, len(data)
        while pos < end:
            key, pos = decode_varint(data, pos)
            num, wt = key >> 3, key & 7
            if num == 0 or key > 0xFFFFFFFF:  # field numbers are 1 … 2**29 - 1
                raise DecodeError(f"invalid field number {num}")
            f = by_num.get(num)
            if f is None:
                pos = skip_field(data, pos, wt, num)
                continue
            name, kind, sub = f
            base = kind & ~REPEATED
            if wt == 0 and base in _VARINT_KINDS:
                v, pos = decode_varint(data, pos)
                v = _scalar(base, v)
                if kind & REPEATED:
                    getattr(self, name).append(v)
                else:
                    object.__setattr__(self, name, v)
                continue
            if wt != 2:
                pos = skip_field(data, pos, wt, num)
                continue
            length, pos = decode_varint(data, pos)
            stop = pos + length
            if stop > end:
                raise DecodeError("truncated length-delimited field")
            raw = data[pos:stop]
            pos = stop
            if base in _VARINT_KINDS:  # packed repeated (or a mismatched singular: skipped)
                if kind & REPEATED:
                    lst = getattr(self, name)
                    p = 0
                    while p < length:
                        v, p = decode_varint(raw, p)
                        lst.append(_scalar(base, v))
                continue
            if base == STRING:
                v = _string(raw)
            elif base == BYTES:
                v = raw
            elif base == MESSAGE:
                if kind & REPEATED:
                    v = sub.decode(raw)
                else:
                    cur = getattr(self, name)
                    if cur is None:
                        object.__setattr__(self, name, sub.decode(raw))
                    else:
                        cur.merge(raw)
                    continue
            else:  # MAP
                entry = _map_entry(raw)
                if entry is not None:
                    getattr(self, name)[entry[0]] = entry[1]
                continue
            if kind & REPEATED:
                getattr(self, name).append(v)
            else:
                object.__setattr__(self, name, v)


def _default(kind: int) -> object:
    if kind & REPEATED:
        return []
    if kind == MAP:
        return {}
    if kind == STRING:
        return ""
    if kind == BYTES:
        return b""
    if kind == BOOL:
        return False
    if kind == MESSAGE:
        return None
    return 0


def _encode_len(out: bytearray, kind: int, v: object, tag: bytes = b"") -> None:
    if kind == STRING:
        body = v.encode("utf-8")  # type: ignore[attr-defined]
    elif kind == BYTES:
        body = bytes(v)  # type: ignore[call-overload]
    else:
        body = v.encode()  # type: ignore[attr-defined]
    out += tag
    out += encode_varint(len(body))
    out += body


def message(full_name: str, *fields: tuple, base: type[Message] = Message) -> type[Message]:
    """A message class for ``full_name`` with ``fields`` = ``(number, name, kind[, class])``."""
    norm = tuple(sorted(((f[0], f[1], f[2], f[3] if len(f) > 3 else None) for f in fields), key=lambda f: f[0]))
    enc = []
    for num, name, kind, sub in norm:
        base_kind = kind & ~REPEATED
        packed = bool(kind & REPEATED) and base_kind in _VARINT_KINDS
        wt = 0 if base_kind in _VARINT_KINDS and not packed else 2
        enc.append((name, kind, encode_varint(num << 3 | wt), sub))
    ns = {
        "__slots__": tuple(f[1] for f in norm),
        "NAME": full_name,
        "FIELDS": norm,
        "_ENC": tuple(enc),
        "_BY_NUM": {num: (name, kind, sub) for num, name, kind, sub in norm},
    }
    return type(full_name.rsplit(".", 1)[-1], (base,), ns)




def _map_entry(raw: bytes) -> tuple[str, str] | None:
    """A ``map<string, string>`` entry; None for one with other fields (protobuf keeps
    such an entry as an unknown field of the message, not in the map)."""
    key = value = ""
    extra = False
    pos = 0
    while pos < len(raw):
        tag, pos = decode_varint(raw, pos)
        if tag >> 3 == 0 or tag > 0xFFFFFFFF:
            raise DecodeError(f"invalid field number {tag >> 3}")
        if tag not in (0x0A, 0x12):
            pos = skip_field(raw, pos, tag & 7, tag >> 3)
            extra = True
            continue
        length, pos = decode_varint(raw, pos)
        if pos + length > len(raw):
            raise DecodeError("truncated map entry")
        text = _string(raw[pos:pos + length])
        pos += length
        if tag == 0x0A:
            key = text
        else:
            value = text
    return None if extra else (key, value)


# --- well-known types ---------------------------------------------------------------------------

Empty = message("google.protobuf.Empty")
EMPTY = b""
"""An encoded ``google.protobuf.Empty``."""

Any = message("google.protobuf.Any", (1, "type_url", STRING), (2, "value", BYTES))


def pack(msg: Message) -> Message:
    """``msg`` in an ``Any`` whose type URL is its bare full name (as containerd's ``typeurl``
    registers its types, e.g. ``containerd.events.TaskExit``)."""
    return Any(type_url=msg.NAME, value=msg.encode())


_Timestamp = message("google.protobuf.Timestamp", (1, "seconds", INT64), (2, "nanos", INT32))


class Timestamp(_Timestamp):  # type: ignore[misc, valid-type]
    """``google.protobuf.Timestamp`` plus the conversions protobuf's well-known type has."""

    __slots__ = ()

    @classmethod
    def from_ns(cls, ns: int) -> Timestamp:
        """``FromNanoseconds``: seconds floor-divided, nanos in ``[0, 1e9)``."""
        seconds, nanos = divmod(int(ns), 1_000_000_000)
        return cls(seconds=seconds, nanos=nanos)

    def to_ns(self) -> int:
        return self.seconds * 1_000_000_000 + self.nanos  # type: ignore[attr-defined]


Status = message("google.rpc.Status", (1, "code", INT32), (2, "message", STRING),
                 (3, "details", MESSAGE | REPEATED, Any))
