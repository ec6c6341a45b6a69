"""``containerd.services.diff.v1.Diff`` over a differ (:class:`WalkingDiffer`)."""

from __future__ import annotations

from ..api.services.diff.v1 import diff_pb2 as pb
from ..api.services.diff.v1 import diff_pb2_grpc
from ..wire.convert import descriptor_from_pb, descriptor_to_pb, mount_from_pb


class DiffServicer(diff_pb2_grpc.DiffServicer):
    service_names = ("containerd.services.diff.v1.Diff",)

    def __init__(self, differ) -> None:
        self.differ = differ

    def add_to_server(self, server) -> None:
        diff_pb2_grpc.add_DiffServicer_to_server(self, server)

    async def Apply(self, request, context):
        applied = await self.differ.apply(descriptor_from_pb(request.diff), [mount_from_pb(m) for m in request.mounts])
        return pb.ApplyResponse(applied=descriptor_to_pb(applied))

    async def Diff(self, request, context):
        desc = await self.differ.compare(
            [mount_from_pb(m) for m in request.left], [mount_from_pb(m) for m in request.right],
            request.media_type, request.ref, dict(request.labels))
        return pb.DiffResponse(diff=descriptor_to_pb(desc))
