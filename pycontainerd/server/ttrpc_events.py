"""The daemon's ttrpc endpoint (``<grpc address>.ttrpc``) where shims publish their events
(``containerd.services.events.ttrpc.v1.Events/Forward``), as containerd serves it."""

from __future__ import annotations

from ..api.services.ttrpc.events.v1 import events_pb2
from ..events.exchange import Envelope, Exchange
from ..ttrpc import aio
from ..typeurl import AnyValue

SERVICE = "containerd.services.events.ttrpc.v1.Events"


def events_server(exchange: Exchange) -> aio.Server:
    """A ttrpc server forwarding shims' envelopes to ``exchange`` (not yet listening)."""

    async def forward(payload: bytes, ctx) -> bytes:
        env = events_pb2.ForwardRequest.FromString(payload).envelope
        exchange.publish_envelope(Envelope(env.timestamp.ToNanoseconds(), env.namespace, env.topic,
                                           AnyValue(env.event.type_url, env.event.value)))
        return b""

    server = aio.Server()
    server.register(SERVICE, {"Forward": forward})
    return server
