"""``containerd.services.leases.v1.Leases`` over :class:`LeaseStore`."""

from __future__ import annotations

from google.protobuf import empty_pb2

from ..api.services.leases.v1 import leases_pb2 as pb
from ..api.services.leases.v1 import leases_pb2_grpc
from ..metadata.leases import LeaseStore
from ..wire.records.leases import lease_to_pb, resource_from_pb, resource_to_pb


class LeasesServicer(leases_pb2_grpc.LeasesServicer):
    service_names = ("containerd.services.leases.v1.Leases",)

    def __init__(self, store: LeaseStore) -> None:
        self.store = store

    def add_to_server(self, server) -> None:
        leases_pb2_grpc.add_LeasesServicer_to_server(self, server)

    async def Create(self, request, context):
        return pb.CreateResponse(lease=lease_to_pb(await self.store.create(request.id, dict(request.labels))))

    async def Delete(self, request, context):
        await self.store.delete(request.id, sync=request.sync)
        return empty_pb2.Empty()

    async def List(self, request, context):
        return pb.ListResponse(leases=[lease_to_pb(x) for x in self.store.list(list(request.filters))])

    async def AddResource(self, request, context):
        await self.store.add_resource(request.id, resource_from_pb(request.resource))
        return empty_pb2.Empty()

    async def DeleteResource(self, request, context):
        await self.store.delete_resource(request.id, resource_from_pb(request.resource))
        return empty_pb2.Empty()

    async def ListResources(self, request, context):
        resources = self.store.list_resources(request.id)
        return pb.ListResourcesResponse(resources=[resource_to_pb(r) for r in resources])
