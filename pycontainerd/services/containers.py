"""``containerd.services.containers.v1.Containers`` over :class:`ContainerStore`."""

from __future__ import annotations

from google.protobuf import any_pb2, empty_pb2

from ..api.services.containers.v1 import containers_pb2 as pb
from ..api.services.containers.v1 import containers_pb2_grpc
from ..metadata.containers import ContainerStore
from ..records.containers import Container, Runtime
from ..typeurl import AnyValue
from .convert import timestamp


def _any_pb(v: AnyValue | None) -> any_pb2.Any | None:
    return None if v is None else any_pb2.Any(type_url=v.type_url, value=v.value)


def _any(v: any_pb2.Any, present: bool) -> AnyValue | None:
    return AnyValue(v.type_url, v.value) if present else None


def container_to_pb(c: Container) -> pb.Container:
    return pb.Container(
        id=c.id,
        labels=dict(c.labels),
        image=c.image,
        runtime=pb.Container.Runtime(name=c.runtime.name, options=_any_pb(c.runtime.options)),
        spec=_any_pb(c.spec),
        snapshotter=c.snapshotter,
        snapshot_key=c.snapshot_key,
        created_at=timestamp(c.created_at),
        updated_at=timestamp(c.updated_at),
        extensions={k: _any_pb(v) for k, v in c.extensions.items()},
    )


def container_from_pb(c: pb.Container) -> Container:
    return Container(
        id=c.id,
        labels=dict(c.labels),
        image=c.image,
        runtime=Runtime(c.runtime.name, _any(c.runtime.options, c.runtime.HasField("options"))),
        spec=_any(c.spec, c.HasField("spec")),
        snapshotter=c.snapshotter,
        snapshot_key=c.snapshot_key,
        extensions={k: AnyValue(v.type_url, v.value) for k, v in c.extensions.items()},
    )


class ContainersServicer(containers_pb2_grpc.ContainersServicer):
    service_names = ("containerd.services.containers.v1.Containers",)

    def __init__(self, store: ContainerStore) -> None:
        self.store = store

    def add_to_server(self, server) -> None:
        containers_pb2_grpc.add_ContainersServicer_to_server(self, server)

    async def Get(self, request, context):
        return pb.GetContainerResponse(container=container_to_pb(self.store.get(request.id)))

    async def List(self, request, context):
        return pb.ListContainersResponse(containers=[container_to_pb(c) for c in self.store.list(list(request.filters))])

    async def ListStream(self, request, context):
        for c in self.store.list(list(request.filters)):
            yield pb.ListContainerMessage(container=container_to_pb(c))

    async def Create(self, request, context):
        c = await self.store.create(container_from_pb(request.container))
        return pb.CreateContainerResponse(container=container_to_pb(c))

    async def Update(self, request, context):
        c = await self.store.update(container_from_pb(request.container), list(request.update_mask.paths))
        return pb.UpdateContainerResponse(container=container_to_pb(c))

    async def Delete(self, request, context):
        await self.store.delete(request.id)
        return empty_pb2.Empty()
