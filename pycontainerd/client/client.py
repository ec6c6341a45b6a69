"""``AsyncClient``: one connection to the daemon and the services on it."""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import grpc
from google.protobuf import empty_pb2, field_mask_pb2

from .. import namespaces as ns_mod
from ..api.services.containers.v1 import containers_pb2, containers_pb2_grpc
from ..api.services.events.v1 import events_pb2, events_pb2_grpc
from ..api.services.images.v1 import images_pb2, images_pb2_grpc
from ..api.services.leases.v1 import leases_pb2, leases_pb2_grpc
from ..api.services.namespaces.v1 import namespace_pb2, namespace_pb2_grpc
from ..api.services.version.v1 import version_pb2_grpc
from ..events.exchange import Envelope
from ..events.filtering import decode
from ..metadata.containers import Container
from ..metadata.images import Image
from ..metadata.leases import Lease
from ..metadata.namespaces import Namespace
from ..services.containers import container_from_pb, container_to_pb
from ..services.images import image_from_pb, image_to_pb
from ..typeurl import AnyValue
from .connection import Connection, mapped, mapped_stream, using_lease
from .content import ContentClient


@dataclass(frozen=True)
class Version:
    version: str
    revision: str


def _image(pb_image) -> Image:
    img = image_from_pb(pb_image)
    return Image(img.name, img.target, img.labels, pb_image.created_at.ToNanoseconds(),
                 pb_image.updated_at.ToNanoseconds())


class AsyncClient:
    """A client of containerd's v1 API (pycontainerd or containerd).

    Args:
        address: unix socket path (or ``unix://…``), or ``host:port`` with ``credentials``.
        namespace: namespace for every call (``containerd-namespace`` metadata).
        timeout: seconds to wait for the first connection (raises ``Unavailable``).
        credentials: ``grpc.ssl_channel_credentials(...)`` for a TLS TCP listener.
    """

    def __init__(self, address: str, namespace: str = ns_mod.DEFAULT, timeout: float = 10.0,
                 credentials: grpc.ChannelCredentials | None = None) -> None:
        self.conn = Connection(address, namespace, timeout, credentials)
        self.timeout = timeout
        ch = self.conn.channel
        self._version = version_pb2_grpc.VersionStub(ch)
        self._namespaces = namespace_pb2_grpc.NamespacesStub(ch)
        self._images = images_pb2_grpc.ImagesStub(ch)
        self._leases = leases_pb2_grpc.LeasesStub(ch)
        self._containers = containers_pb2_grpc.ContainersStub(ch)
        self._events = events_pb2_grpc.EventsStub(ch)
        self.content = ContentClient(self.conn)

    @property
    def namespace(self) -> str:
        return self.conn.namespace

    async def __aenter__(self) -> AsyncClient:
        await self.conn.wait_ready(self.timeout)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        await self.conn.close()

    def md(self):
        return self.conn.metadata()

    # -- version, namespaces ---------------------------------------------------------
    @mapped
    async def version(self) -> Version:
        resp = await self._version.Version(empty_pb2.Empty(), metadata=self.md())
        return Version(resp.version, resp.revision)

    @mapped
    async def list_namespaces(self) -> list[Namespace]:
        resp = await self._namespaces.List(namespace_pb2.ListNamespacesRequest(), metadata=self.md())
        return [Namespace(n.name, dict(n.labels)) for n in resp.namespaces]

    @mapped
    async def create_namespace(self, name: str, labels: Mapping[str, str] | None = None) -> Namespace:
        req = namespace_pb2.CreateNamespaceRequest(namespace=namespace_pb2.Namespace(name=name, labels=labels or {}))
        resp = await self._namespaces.Create(req, metadata=self.md())
        return Namespace(resp.namespace.name, dict(resp.namespace.labels))

    @mapped
    async def delete_namespace(self, name: str) -> None:
        await self._namespaces.Delete(namespace_pb2.DeleteNamespaceRequest(name=name), metadata=self.md())

    # -- images -----------------------------------------------------------------------
    @mapped
    async def get_image(self, name: str) -> Image:
        """Raises :class:`NotFound`."""
        resp = await self._images.Get(images_pb2.GetImageRequest(name=name), metadata=self.md())
        return _image(resp.image)

    @mapped
    async def list_images(self, *filters: str) -> list[Image]:
        resp = await self._images.List(images_pb2.ListImagesRequest(filters=list(filters)), metadata=self.md())
        return [_image(i) for i in resp.images]

    @mapped
    async def create_image(self, image: Image) -> Image:
        resp = await self._images.Create(images_pb2.CreateImageRequest(image=image_to_pb(image)), metadata=self.md())
        return _image(resp.image)

    @mapped
    async def update_image(self, image: Image, *paths: str) -> Image:
        req = images_pb2.UpdateImageRequest(image=image_to_pb(image),
                                            update_mask=field_mask_pb2.FieldMask(paths=list(paths)))
        return _image((await self._images.Update(req, metadata=self.md())).image)

    @mapped
    async def delete_image(self, name: str, sync: bool = False) -> None:
        """Delete the image record; with ``sync`` wait until garbage collection ran."""
        await self._images.Delete(images_pb2.DeleteImageRequest(name=name, sync=sync), metadata=self.md())

    # -- leases -----------------------------------------------------------------------
    @mapped
    async def create_lease(self, lease_id: str = "", labels: Mapping[str, str] | None = None,
                           expire: timedelta | None = timedelta(hours=24)) -> Lease:
        labels = dict(labels or {})
        if expire is not None:
            when = datetime.now(timezone.utc) + expire
            labels["containerd.io/gc.expire"] = when.strftime("%Y-%m-%dT%H:%M:%SZ")
        resp = await self._leases.Create(leases_pb2.CreateRequest(id=lease_id, labels=labels), metadata=self.md())
        lease = resp.lease
        return Lease(lease.id, dict(lease.labels), lease.created_at.ToNanoseconds())

    @mapped
    async def list_leases(self, *filters: str) -> list[Lease]:
        resp = await self._leases.List(leases_pb2.ListRequest(filters=list(filters)), metadata=self.md())
        return [Lease(x.id, dict(x.labels), x.created_at.ToNanoseconds()) for x in resp.leases]

    @mapped
    async def delete_lease(self, lease_id: str, sync: bool = False) -> None:
        await self._leases.Delete(leases_pb2.DeleteRequest(id=lease_id, sync=sync), metadata=self.md())

    @contextlib.asynccontextmanager
    async def lease(self, expire: timedelta = timedelta(hours=1)) -> AsyncIterator[Lease]:
        """Protect everything created inside the block from garbage collection until it
        ends (containerd's ``client.WithLease``); the lease is deleted on exit."""
        lease = await self.create_lease(f"pycontainerd-{time.time_ns()}-{secrets.token_hex(3)}", expire=expire)
        try:
            with using_lease(lease.id):
                yield lease
        finally:
            await self.delete_lease(lease.id)

    # -- containers -------------------------------------------------------------------
    @mapped
    async def create_container(self, container: Container) -> Container:
        req = containers_pb2.CreateContainerRequest(container=container_to_pb(container))
        return container_from_pb((await self._containers.Create(req, metadata=self.md())).container)

    @mapped
    async def get_container(self, cid: str) -> Container:
        resp = await self._containers.Get(containers_pb2.GetContainerRequest(id=cid), metadata=self.md())
        return container_from_pb(resp.container)

    @mapped
    async def list_containers(self, *filters: str) -> list[Container]:
        resp = await self._containers.List(containers_pb2.ListContainersRequest(filters=list(filters)),
                                           metadata=self.md())
        return [container_from_pb(c) for c in resp.containers]

    @mapped
    async def delete_container(self, cid: str) -> None:
        await self._containers.Delete(containers_pb2.DeleteContainerRequest(id=cid), metadata=self.md())

    # -- events -----------------------------------------------------------------------
    async def subscribe(self, *filters: str) -> AsyncIterator[Envelope]:
        """Events from now on matching any filter, as envelopes whose ``event`` is the
        decoded message when its type is known (else an :class:`AnyValue`)."""
        call = self._events.Subscribe(events_pb2.SubscribeRequest(filters=list(filters)), metadata=self.md())
        try:
            async for env in mapped_stream(call):
                raw = AnyValue(env.event.type_url, env.event.value)
                yield Envelope(env.timestamp.ToNanoseconds(), env.namespace, env.topic, decode(raw) or raw)
        finally:
            call.cancel()
