"""``containerd.services.events.v1.Events``: Publish, Forward, Subscribe over the exchange."""

from __future__ import annotations

from google.protobuf import any_pb2, empty_pb2
from google.protobuf.message import Message

from ..api.services.events.v1 import events_pb2 as pb
from ..api.services.events.v1 import events_pb2_grpc
from ..errdefs import InvalidArgument
from ..events.exchange import Envelope, Exchange
from ..events.filtering import matcher
from ..typeurl import AnyValue, pack
from ..wire.convert import nanoseconds, timestamp


def envelope_to_pb(env: Envelope) -> pb.Envelope:
    event = pack(env.event) if isinstance(env.event, Message) else env.event
    return pb.Envelope(
        timestamp=timestamp(env.timestamp_ns),
        namespace=env.namespace,
        topic=env.topic,
        event=any_pb2.Any(type_url=event.type_url, value=event.value),
    )


class EventsServicer(events_pb2_grpc.EventsServicer):
    service_names = ("containerd.services.events.v1.Events",)

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange

    def add_to_server(self, server) -> None:
        events_pb2_grpc.add_EventsServicer_to_server(self, server)

    def shutdown(self) -> None:
        """End open Subscribe streams (called before the server's graceful stop)."""
        self.exchange.close()

    async def Publish(self, request, context):
        if not request.HasField("event"):
            raise InvalidArgument("event must not be nil")
        self.exchange.publish(request.topic, AnyValue(request.event.type_url, request.event.value))
        return empty_pb2.Empty()

    async def Forward(self, request, context):
        env = request.envelope
        if not env.HasField("event"):
            raise InvalidArgument("event must not be nil")
        self.exchange.publish_envelope(
            Envelope(nanoseconds(env.timestamp), env.namespace, env.topic, AnyValue(env.event.type_url, env.event.value))
        )
        return empty_pb2.Empty()

    async def Subscribe(self, request, context):
        with self.exchange.subscribe(matcher(list(request.filters))) as sub:
            async for env in sub:
                yield envelope_to_pb(env)
