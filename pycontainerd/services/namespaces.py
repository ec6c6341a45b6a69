"""``containerd.services.namespaces.v1.Namespaces`` over :class:`NamespaceStore`."""

from __future__ import annotations

from google.protobuf import empty_pb2

from ..api.services.namespaces.v1 import namespace_pb2 as pb
from ..api.services.namespaces.v1 import namespace_pb2_grpc
from ..metadata.namespaces import NamespaceStore
from ..wire.records.namespaces import namespace_to_pb


class NamespacesServicer(namespace_pb2_grpc.NamespacesServicer):
    service_names = ("containerd.services.namespaces.v1.Namespaces",)

    def __init__(self, store: NamespaceStore) -> None:
        self.store = store

    def add_to_server(self, server) -> None:
        namespace_pb2_grpc.add_NamespacesServicer_to_server(self, server)

    async def Get(self, request, context):
        return pb.GetNamespaceResponse(namespace=namespace_to_pb(self.store.get(request.name)))

    async def List(self, request, context):
        return pb.ListNamespacesResponse(namespaces=[namespace_to_pb(n) for n in self.store.list()])

    async def Create(self, request, context):
        ns = await self.store.create(request.namespace.name, dict(request.namespace.labels))
        return pb.CreateNamespaceResponse(namespace=namespace_to_pb(ns))

    async def Update(self, request, context):
        ns = await self.store.update(
            request.namespace.name, dict(request.namespace.labels), list(request.update_mask.paths)
        )
        return pb.UpdateNamespaceResponse(namespace=namespace_to_pb(ns))

    async def Delete(self, request, context):
        await self.store.delete(request.name)
        return empty_pb2.Empty()
