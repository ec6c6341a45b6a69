"""The event exchange (``io.containerd.event.v1.exchange``): publish and subscribe in-process.

Events are protobuf messages of package ``containerd.events`` (e.g. ``NamespaceCreate``),
wrapped in an :class:`Envelope` with the time, namespace and topic. Stores publish *after*
their transaction commits. Each subscriber gets its own unbounded queue, so a slow
subscriber never blocks a publisher or another subscriber; it is dropped when it stops
iterating. A subscriber's filter runs as the event is published, so a subscriber wakes only
for the events it wants (the CRI's exit monitor sees none of a busy daemon's other events).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from google.protobuf.message import Message

from .. import identifiers, namespaces
from ..errdefs import InvalidArgument, quote
from ..typeurl import AnyValue

_CLOSED = object()


@dataclass(frozen=True)
class Envelope:
    """One published event.

    Attributes:
        timestamp_ns: publication time, nanoseconds since the Unix epoch.
        namespace: namespace the event belongs to.
        topic: containerd topic, e.g. ``/namespaces/create``.
        event: the event message (its full name goes into the ``Any`` type URL), or an
            :class:`~pycontainerd.typeurl.AnyValue` as a client published it.
    """

    timestamp_ns: int
    namespace: str
    topic: str
    event: Message | AnyValue


def validate_topic(topic: str) -> str:
    """Check a topic as containerd does: ``/`` followed by ``/``-separated identifiers.

    Raises :class:`InvalidArgument`.
    """
    if not topic or not topic.startswith("/") or topic == "/":
        raise InvalidArgument(f"topic {quote(topic)} must be a path starting with '/'")
    for part in topic[1:].split("/"):
        try:
            identifiers.validate(part)
        except InvalidArgument as exc:
            raise InvalidArgument(f"failed validation on component {quote(part)} of topic {quote(topic)}") from exc
    return topic


class Exchange:
    """Fan-out of events to every subscriber."""

    def __init__(self) -> None:
        self._subscribers: set[Subscription] = set()

    def publish_envelope(self, envelope: Envelope) -> None:
        """Deliver an already-built envelope (``Forward``) to every subscriber."""
        validate_topic(envelope.topic)
        identifiers.validate(envelope.namespace)
        for sub in self._subscribers:
            if sub.wants(envelope):
                sub.queue.put_nowait(envelope)

    def publish(self, topic: str, event: Message | AnyValue, namespace: str | None = None) -> Envelope:
        """Publish ``event`` on ``topic`` in ``namespace`` (default: the request's).

        Raises:
            InvalidArgument: bad topic or namespace.
            FailedPrecondition: no namespace given and none in the context.
        """
        envelope = Envelope(time.time_ns(), namespace or namespaces.required(), topic, event)
        self.publish_envelope(envelope)
        return envelope

    def subscribe(self, match: Callable[[Envelope], bool] | None = None) -> Subscription:
        """Start receiving every envelope published from now on that ``match`` accepts
        (all by default). Registration is immediate; iterate the result asynchronously and
        close it (or use it as a context manager) when done."""
        sub = Subscription(self, match)
        self._subscribers.add(sub)
        return sub

    def close(self) -> None:
        """End every subscription (their iterations stop); used at daemon shutdown so
        streaming subscribers do not hold the shutdown grace period."""
        for sub in list(self._subscribers):
            sub.queue.put_nowait(_CLOSED)
        self._subscribers.clear()

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)


class Subscription:
    """An exchange subscription: ``async for envelope in sub`` until :meth:`close`."""

    def __init__(self, exchange: Exchange, match: Callable[[Envelope], bool] | None) -> None:
        self.exchange = exchange
        self.match = match
        self.queue: asyncio.Queue[Envelope] = asyncio.Queue()

    def wants(self, envelope: Envelope) -> bool:
        """Whether the filter accepts ``envelope``; an event it cannot read (a client's
        malformed payload) is not delivered to this subscriber and fails no publisher."""
        if self.match is None:
            return True
        try:
            return bool(self.match(envelope))
        except Exception:  # noqa: BLE001 - one subscriber's filter must not fail a publish
            return False

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Envelope:
        envelope = await self.queue.get()
        if envelope is _CLOSED:
            raise StopAsyncIteration
        return envelope

    def close(self) -> None:
        self.exchange._subscribers.discard(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
