"""``containerd.services.containers.v1.Containers`` over :class:`ContainerStore`."""

from __future__ import annotations

from google.protobuf import empty_pb2

from ..api.services.containers.v1 import containers_pb2 as pb
from ..api.services.containers.v1 import containers_pb2_grpc
from .. import namespaces
from ..memo import ByIdentity, Latest
from ..metadata.containers import ContainerStore
from ..records.containers import Container
from ..wire.records.containers import container_from_pb, container_to_pb


class ContainersServicer(containers_pb2_grpc.ContainersServicer):
    service_names = ("containerd.services.containers.v1.Containers",)

    def __init__(self, store: ContainerStore) -> None:
        self.store = store
        self._encoded: ByIdentity[pb.Container] = ByIdentity()
        """Messages of the store's (immutable, memoized) records, each dropped with its
        record (when the store replaces or forgets it)."""
        self._lists: Latest[pb.ListContainersResponse] = Latest(16)
        self._gets: Latest[pb.GetContainerResponse] = Latest(256)
        """The last answer to each List (namespace, filters) and Get (namespace, id), for
        the database's write generation read before it: kubelet and agents ask about an
        unchanged namespace over and over (:class:`~pycontainerd.memo.Latest`). Few lists
        are kept: one of a busy namespace is megabytes."""

    def _pb(self, c: Container) -> pb.Container:
        return self._encoded.get(c, lambda: container_to_pb(c))

    def add_to_server(self, server) -> None:
        containers_pb2_grpc.add_ContainersServicer_to_server(self, server)

    async def Get(self, request, context):
        return self._gets.get((namespaces.required(), request.id), self.store.db.generation,
                                 lambda: pb.GetContainerResponse(container=self._pb(self.store.get(request.id))))

    async def List(self, request, context):
        filters = list(request.filters)
        return self._lists.get((namespaces.required(), *filters), self.store.db.generation,
                                lambda: pb.ListContainersResponse(containers=[self._pb(c)
                                                                              for c in self.store.list(filters)]))

    async def ListStream(self, request, context):
        for c in self.store.list(list(request.filters)):
            yield pb.ListContainerMessage(container=self._pb(c))

    async def Create(self, request, context):
        c = await self.store.create(container_from_pb(request.container))
        return pb.CreateContainerResponse(container=container_to_pb(c))

    async def Update(self, request, context):
        c = await self.store.update(container_from_pb(request.container), list(request.update_mask.paths))
        return pb.UpdateContainerResponse(container=container_to_pb(c))

    async def Delete(self, request, context):
        await self.store.delete(request.id)
        return empty_pb2.Empty()
