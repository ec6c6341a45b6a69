"""``containerd.services.leases.v1.Leases`` over :class:`LeaseStore`."""

from __future__ import annotations

from google.protobuf import empty_pb2

from ..api.services.leases.v1 import leases_pb2 as pb
from ..api.services.leases.v1 import leases_pb2_grpc
from ..metadata.leases import LeaseStore
from ..records.leases import Lease, Resource
from .convert import timestamp


def _lease_pb(lease: Lease) -> pb.Lease:
    return pb.Lease(id=lease.id, labels=dict(lease.labels), created_at=timestamp(lease.created_at))


def _resource(r: pb.Resource) -> Resource:
    return Resource(id=r.id, type=r.type)


class LeasesServicer(leases_pb2_grpc.LeasesServicer):
    service_names = ("containerd.services.leases.v1.Leases",)

    def __init__(self, store: LeaseStore) -> None:
        self.store = store

    def add_to_server(self, server) -> None:
        leases_pb2_grpc.add_LeasesServicer_to_server(self, server)

    async def Create(self, request, context):
        return pb.CreateResponse(lease=_lease_pb(await self.store.create(request.id, dict(request.labels))))

    async def Delete(self, request, context):
        await self.store.delete(request.id, sync=request.sync)
        return empty_pb2.Empty()

    async def List(self, request, context):
        return pb.ListResponse(leases=[_lease_pb(x) for x in self.store.list(list(request.filters))])

    async def AddResource(self, request, context):
        await self.store.add_resource(request.id, _resource(request.resource))
        return empty_pb2.Empty()

    async def DeleteResource(self, request, context):
        await self.store.delete_resource(request.id, _resource(request.resource))
        return empty_pb2.Empty()

    async def ListResources(self, request, context):
        resources = self.store.list_resources(request.id)
        return pb.ListResourcesResponse(resources=[pb.Resource(id=r.id, type=r.type) for r in resources])
