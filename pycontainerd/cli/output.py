"""Formatting for ``pyctr``: aligned tables, human sizes and ages, JSON, timestamps.

Pure functions (no I/O besides the ``echo`` helpers), unit-tested on their own.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import click
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from ..typeurl import AnyValue

FORMATS = ("table", "json")


def human_size(n: int | float) -> str:
    """Bytes in binary units with one decimal, as ``ctr`` prints them: ``349 B``,
    ``1.0 KiB``, ``1.9 MiB``."""
    n = float(n)
    if n < 1024:
        return f"{int(n)} B"
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        n /= 1024
        if n < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}"
    raise AssertionError("unreachable")


_SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
               "t": 1000**4, "tb": 1000**4, "ki": 1024, "kib": 1024, "mi": 1024**2, "mib": 1024**2,
               "gi": 1024**3, "gib": 1024**3, "ti": 1024**4, "tib": 1024**4}


def parse_size(text: str) -> int:
    """``"67108864"``, ``"64m"``, ``"64MiB"``, ``"1.5g"`` → bytes. Units: k/m/g/t (×1000) and
    ki/mi/gi/ti or KiB/MiB/… (×1024); case does not matter. Raises ``ValueError``."""
    s = text.strip().lower().replace(" ", "")
    i = len(s)
    while i > 0 and s[i - 1].isalpha():
        i -= 1
    number, unit = s[:i], s[i:]
    if unit not in _SIZE_UNITS or not number:
        raise ValueError(f"invalid size {text!r} (examples: 67108864, 64m, 64MiB, 1.5g)")
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f"invalid size {text!r} (examples: 67108864, 64m, 64MiB, 1.5g)") from None
    if value < 0:
        raise ValueError(f"invalid size {text!r}: negative")
    return int(value * _SIZE_UNITS[unit])


def human_duration(seconds: float) -> str:
    """Go-units' ``HumanDuration``: ``Less than a second``, ``5 seconds``, ``About a
    minute``, ``3 minutes``, ``About an hour``, ``2 hours``, ``3 days``, ``2 weeks``,
    ``4 months``, ``2 years``."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(s / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{hours // 24 // 365} years"


def age(ns: int, now: float | None = None) -> str:
    """How long ago a time in ns since the epoch was, humanly."""
    if not ns:
        return "-"
    now = time.time() if now is None else now
    return human_duration(max(0.0, now - ns / 1e9))


def go_time(ns: int) -> str:
    """A time the way Go's ``time.Time.String`` prints it in UTC (what ``ctr events`` shows):
    ``2024-01-02 03:04:05.123456789 +0000 UTC``."""
    secs, frac = divmod(ns, 1_000_000_000)
    dt = datetime.fromtimestamp(secs, timezone.utc)
    return f"{dt:%Y-%m-%d %H:%M:%S}.{frac:09d} +0000 UTC"


def rfc3339(ns: int) -> str:
    """``2024-01-02T03:04:05.123456789Z`` (``""`` for 0)."""
    if not ns:
        return ""
    secs, frac = divmod(ns, 1_000_000_000)
    dt = datetime.fromtimestamp(secs, timezone.utc)
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{frac:09d}Z"


def labels_text(labels: Mapping[str, str] | None) -> str:
    """``k=v,k2=v2`` sorted, or ``-`` when empty."""
    if not labels:
        return "-"
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def parse_labels(items: Iterable[str]) -> dict[str, str]:
    """``["a=1", "b="]`` → ``{"a": "1", "b": ""}``; ``"c"`` alone → ``{"c": ""}``."""
    out: dict[str, str] = {}
    for item in items:
        k, _, v = item.partition("=")
        if not k:
            raise ValueError(f"invalid label {item!r} (want key=value)")
        out[k] = v
    return out


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], padding: int = 3) -> str:
    """Rows aligned in columns (every column as wide as its widest cell plus ``padding``,
    the last one not padded); ``""`` for no headers."""
    data = [[str(c) for c in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    if not headers:
        return ""
    widths = [max(len(r[i]) if i < len(r) else 0 for r in data) for i in range(len(headers))]
    lines = []
    for r in data:
        cells = [(r[i] if i < len(r) else "").ljust(widths[i] + padding) for i in range(len(headers) - 1)]
        cells.append(r[-1] if len(r) == len(headers) else "")
        lines.append("".join(cells).rstrip())
    return "\n".join(lines) + "\n"


def is_time_key(key: str) -> bool:
    """Whether a JSON key holds a time (printed as an RFC 3339 string): ``*_at``, ``timestamp``."""
    return key.endswith("_at") or key == "timestamp"


def to_jsonable(value: Any, key: str = "") -> Any:
    """A value as pyctr prints it in JSON (the convention of ``docs/pyctr.md``): records
    (dataclasses, descriptors, protobuf messages) as objects with snake_case keys, enumerations
    as lowercase names, times
    (keys ``*_at`` and ``timestamp``, ns since the epoch) as RFC 3339 strings, sizes and
    other integers as numbers, bytes as text. ``key`` is the key ``value`` is stored under."""
    if isinstance(value, Message):
        return message_jsonable(value)
    if isinstance(value, AnyValue):
        return {"type_url": value.type_url, "value": value.value.hex()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name), f.name) for f in dataclasses.fields(value)
                if f.name != "client" and f.repr}
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, enum.Enum):
        return value.name.lower()
    if isinstance(value, int) and not isinstance(value, bool) and is_time_key(key):
        return rfc3339(value) or None
    return value


_INT64 = {FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT64,
          FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED64}


def message_jsonable(msg: Message) -> Any:
    """A protobuf message as JSON with proto field names (snake_case), Timestamps as RFC 3339
    strings and 64-bit integers as numbers (protobuf's JSON mapping makes them strings)."""
    from google.protobuf import json_format  # with text_format: for JSON output of messages only

    return _fix_int64(msg.DESCRIPTOR, json_format.MessageToDict(msg, preserving_proto_field_name=True))


def _fix_int64(desc: Any, doc: Any) -> Any:
    if not isinstance(doc, dict) or desc.full_name.startswith("google.protobuf."):
        return doc  # well-known types have their own JSON forms
    for field in desc.fields:
        if field.name not in doc:
            continue
        value = doc[field.name]
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            doc[field.name] = {k: _fix_one(value_field, v) for k, v in value.items()}
        elif _repeated(field):
            doc[field.name] = [_fix_one(field, v) for v in value]
        else:
            doc[field.name] = _fix_one(field, value)
    return doc


def _repeated(field: Any) -> bool:
    flag = getattr(field, "is_repeated", None)  # protobuf 6+; ``label`` before
    return bool(flag) if flag is not None else field.label == FieldDescriptor.LABEL_REPEATED


def _fix_one(field: Any, value: Any) -> Any:
    if field.type in _INT64 and isinstance(value, str):
        return int(value)
    if field.message_type is not None:
        return _fix_int64(field.message_type, value)
    return value


def dumps(value: Any, indent: int | None = 2) -> str:
    return json.dumps(to_jsonable(value), indent=indent, sort_keys=False)


def event_json(event: Any) -> str:
    """An event message as compact JSON with proto field names (``ctr events`` style)."""
    if isinstance(event, Message):
        return json.dumps(message_jsonable(event), separators=(",", ":"))
    if isinstance(event, AnyValue):
        return json.dumps({"type_url": event.type_url}, separators=(",", ":"))
    return json.dumps(to_jsonable(event), separators=(",", ":"))


def echo_listing(fmt: str, quiet: bool, headers: Sequence[str], rows: list[Sequence[Any]], items: list[Any],
                 ids: list[str], padding: int = 3) -> None:
    """Print a listing as ``--format``/``-q`` ask: ids one per line, a JSON array of
    ``items``, or an aligned table."""
    if quiet:
        for i in ids:
            click.echo(i)
    elif fmt == "json":
        click.echo(dumps(items))
    else:
        click.echo(table(headers, rows, padding), nl=False)
