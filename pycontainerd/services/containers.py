"""``containerd.services.containers.v1.Containers`` over :class:`ContainerStore`."""

from __future__ import annotations

from google.protobuf import empty_pb2

from ..api.services.containers.v1 import containers_pb2 as pb
from ..api.services.containers.v1 import containers_pb2_grpc
from ..metadata.containers import ContainerStore
from ..wire.records import container_from_pb, container_to_pb


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
