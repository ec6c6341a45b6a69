"""Filtering envelopes with containerd's filter language (Events.Subscribe).

Fields: ``topic``, ``namespace``, and ``event.<field>[.<field>…]`` — the event is decoded
when its type URL names a message this daemon knows (every ``containerd.events`` type),
and the path walks its fields by name (``event.container_id``, ``event.labels.<key>``).
"""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf import symbol_database
from google.protobuf.message import Message

from .. import filters
from ..typeurl import AnyValue
from .exchange import Envelope


def decode(event: Message | AnyValue) -> Message | None:
    """The event as a message, or None for an unknown type or undecodable bytes."""
    if isinstance(event, Message):
        return event
    name = event.type_url.rsplit("/", 1)[-1]
    try:
        cls = symbol_database.Default().GetSymbol(name)
        msg = cls()
        msg.ParseFromString(event.value)
        return msg
    except Exception:
        return None


def _field(msg: Message, path: Sequence[str]) -> str | None:
    value: object = msg
    for i, part in enumerate(path):
        if isinstance(value, Message):
            if part not in value.DESCRIPTOR.fields_by_name:
                return None
            fd = value.DESCRIPTOR.fields_by_name[part]
            if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
                return dict(getattr(value, part)).get(".".join(path[i + 1:]))
            value = getattr(value, part)
        else:
            return None
    if isinstance(value, Message):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if value != "" else None


def adaptor(envelope: Envelope) -> filters.Adaptor:
    decoded: list[Message | None] = []

    def field_of(path: Sequence[str]) -> str | None:
        head = path[0]
        if len(path) == 1 and head in ("topic", "namespace"):
            return getattr(envelope, head) or None
        if head == "event" and len(path) > 1:
            if not decoded:
                decoded.append(decode(envelope.event))
            return _field(decoded[0], path[1:]) if decoded[0] is not None else None
        return None

    return field_of


def matcher(filter_texts: Sequence[str]):
    """A predicate on envelopes for the given filters. Raises :class:`InvalidArgument`."""
    parsed = filters.parse_all(filter_texts)
    return lambda envelope: parsed.match(adaptor(envelope))
