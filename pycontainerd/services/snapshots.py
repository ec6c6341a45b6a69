"""``containerd.services.snapshots.v1.Snapshots`` over the namespaced snapshot stores.

The request's ``snapshotter`` field picks the store; an empty one is ``INVALID_ARGUMENT``
(``snapshotter argument missing``), an unknown one too (``snapshotter not loaded: <name>``),
as containerd answers. List streams infos in batches of 100.
"""

from __future__ import annotations

from collections.abc import Mapping

from google.protobuf import empty_pb2

from ..api.services.snapshots.v1 import snapshots_pb2 as pb
from ..api.services.snapshots.v1 import snapshots_pb2_grpc
from ..errdefs import InvalidArgument
from ..snapshots.types import Snapshotter
from ..wire.convert import mount_to_pb
from ..wire.records.snapshots import snapshot_info_from_pb, snapshot_info_to_pb

LIST_BATCH = 100


class SnapshotsServicer(snapshots_pb2_grpc.SnapshotsServicer):
    """Thin layer over ``{snapshotter name: store}`` (the snapshots-service plugin)."""

    service_names = ("containerd.services.snapshots.v1.Snapshots",)

    def __init__(self, stores: Mapping[str, Snapshotter]) -> None:
        self.stores = stores

    def add_to_server(self, server) -> None:
        snapshots_pb2_grpc.add_SnapshotsServicer_to_server(self, server)

    def _store(self, name: str) -> Snapshotter:
        if not name:
            raise InvalidArgument("snapshotter argument missing")
        store = self.stores.get(name)
        if store is None:
            raise InvalidArgument(f"snapshotter not loaded: {name}")
        return store

    async def Prepare(self, request, context):
        mounts = await self._store(request.snapshotter).prepare(request.key, request.parent, dict(request.labels))
        return pb.PrepareSnapshotResponse(mounts=[mount_to_pb(m) for m in mounts])

    async def View(self, request, context):
        mounts = await self._store(request.snapshotter).view(request.key, request.parent, dict(request.labels))
        return pb.ViewSnapshotResponse(mounts=[mount_to_pb(m) for m in mounts])

    async def Mounts(self, request, context):
        mounts = await self._store(request.snapshotter).mounts(request.key)
        return pb.MountsResponse(mounts=[mount_to_pb(m) for m in mounts])

    async def Commit(self, request, context):
        await self._store(request.snapshotter).commit(request.name, request.key, dict(request.labels))
        return empty_pb2.Empty()

    async def Remove(self, request, context):
        await self._store(request.snapshotter).remove(request.key)
        return empty_pb2.Empty()

    async def Stat(self, request, context):
        info = await self._store(request.snapshotter).stat(request.key)
        return pb.StatSnapshotResponse(info=snapshot_info_to_pb(info))

    async def Update(self, request, context):
        store = self._store(request.snapshotter)
        info = await store.update(snapshot_info_from_pb(request.info), list(request.update_mask.paths))
        return pb.UpdateSnapshotResponse(info=snapshot_info_to_pb(info))

    async def List(self, request, context):
        infos = await self._store(request.snapshotter).walk(list(request.filters))
        for start in range(0, len(infos), LIST_BATCH):
            yield pb.ListSnapshotsResponse(info=[snapshot_info_to_pb(i) for i in infos[start : start + LIST_BATCH]])

    async def Usage(self, request, context):
        usage = await self._store(request.snapshotter).usage(request.key)
        return pb.UsageResponse(size=usage.size, inodes=usage.inodes)

    async def Cleanup(self, request, context):
        await self._store(request.snapshotter).cleanup()
        return empty_pb2.Empty()
