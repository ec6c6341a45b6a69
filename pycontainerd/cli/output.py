"""Formatting for ``pyctr``: aligned tables, human sizes and ages, JSON, timestamps.

Pure functions (no I/O besides the ``echo`` helpers), unit-tested on their own.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import click
from google.protobuf import json_format
from google.protobuf.message import Message

from ..descriptor import Descriptor, Platform
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


def to_jsonable(value: Any) -> Any:
    """Dataclasses, descriptors, protobuf messages, ``AnyValue``, bytes, mappings and
    sequences as plain JSON values."""
    if isinstance(value, Message):
        return json_format.MessageToDict(value, preserving_proto_field_name=True)
    if isinstance(value, (Descriptor, Platform)):
        return value.to_dict()
    if isinstance(value, AnyValue):
        return {"type_url": value.type_url, "value": value.value.hex()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)
                if f.name != "client" and f.repr}
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def dumps(value: Any, indent: int | None = 2) -> str:
    return json.dumps(to_jsonable(value), indent=indent, sort_keys=False)


def event_json(event: Any) -> str:
    """An event message as compact JSON with proto field names (``ctr events`` style)."""
    if isinstance(event, Message):
        return json.dumps(json_format.MessageToDict(event, preserving_proto_field_name=True),
                          separators=(",", ":"))
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
