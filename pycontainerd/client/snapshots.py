"""Snapshots and Diff services, as the unpacker and ``pyctr snapshots`` use them."""

from __future__ import annotations

from collections.abc import Mapping

from google.protobuf import field_mask_pb2

from ..api.services.diff.v1 import diff_pb2, diff_pb2_grpc
from ..api.services.snapshots.v1 import snapshots_pb2 as pb, snapshots_pb2_grpc
from ..descriptor import Descriptor
from ..mount import Mount
from ..services.convert import descriptor_from_pb, descriptor_to_pb, mount_from_pb, mount_to_pb
from .connection import Connection, mapped, mapped_stream

DEFAULT_SNAPSHOTTER = "overlayfs"


class SnapshotClient:
    """One snapshotter of the daemon (``name``), through the Snapshots service."""

    def __init__(self, conn: Connection, name: str = DEFAULT_SNAPSHOTTER) -> None:
        self.conn = conn
        self.name = name
        self.stub = snapshots_pb2_grpc.SnapshotsStub(conn.channel)

    @mapped
    async def prepare(self, key: str, parent: str = "", labels: Mapping[str, str] | None = None) -> list[Mount]:
        resp = await self.stub.Prepare(pb.PrepareSnapshotRequest(snapshotter=self.name, key=key, parent=parent,
                                                                 labels=dict(labels or {})),
                                       metadata=self.conn.metadata())
        return [mount_from_pb(m) for m in resp.mounts]

    @mapped
    async def view(self, key: str, parent: str = "", labels: Mapping[str, str] | None = None) -> list[Mount]:
        resp = await self.stub.View(pb.ViewSnapshotRequest(snapshotter=self.name, key=key, parent=parent,
                                                           labels=dict(labels or {})), metadata=self.conn.metadata())
        return [mount_from_pb(m) for m in resp.mounts]

    @mapped
    async def mounts(self, key: str) -> list[Mount]:
        resp = await self.stub.Mounts(pb.MountsRequest(snapshotter=self.name, key=key), metadata=self.conn.metadata())
        return [mount_from_pb(m) for m in resp.mounts]

    @mapped
    async def commit(self, name: str, key: str, labels: Mapping[str, str] | None = None) -> None:
        await self.stub.Commit(pb.CommitSnapshotRequest(snapshotter=self.name, name=name, key=key,
                                                        labels=dict(labels or {})), metadata=self.conn.metadata())

    @mapped
    async def remove(self, key: str) -> None:
        await self.stub.Remove(pb.RemoveSnapshotRequest(snapshotter=self.name, key=key), metadata=self.conn.metadata())

    @mapped
    async def stat(self, key: str) -> pb.Info:
        """The snapshot's info message. Raises :class:`NotFound`."""
        resp = await self.stub.Stat(pb.StatSnapshotRequest(snapshotter=self.name, key=key),
                                    metadata=self.conn.metadata())
        return resp.info

    @mapped
    async def update_labels(self, key: str, labels: Mapping[str, str]) -> pb.Info:
        req = pb.UpdateSnapshotRequest(snapshotter=self.name, info=pb.Info(name=key, labels=dict(labels)),
                                       update_mask=field_mask_pb2.FieldMask(paths=[f"labels.{k}" for k in labels]))
        return (await self.stub.Update(req, metadata=self.conn.metadata())).info

    async def list(self, *filters: str) -> list[pb.Info]:
        out: list[pb.Info] = []
        call = self.stub.List(pb.ListSnapshotsRequest(snapshotter=self.name, filters=list(filters)),
                              metadata=self.conn.metadata())
        async for resp in mapped_stream(call):
            out.extend(resp.info)
        return out

    @mapped
    async def usage(self, key: str) -> tuple[int, int]:
        """``(size in bytes, inodes)``."""
        resp = await self.stub.Usage(pb.UsageRequest(snapshotter=self.name, key=key), metadata=self.conn.metadata())
        return resp.size, resp.inodes


class DiffClient:
    """The Diff service: apply a layer onto mounts, or compare two mount sets."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.stub = diff_pb2_grpc.DiffStub(conn.channel)

    @mapped
    async def apply(self, layer: Descriptor, mounts: list[Mount]) -> Descriptor:
        """Apply ``layer`` onto ``mounts``; returns the descriptor of the uncompressed layer
        (its digest is the diffID)."""
        resp = await self.stub.Apply(diff_pb2.ApplyRequest(diff=descriptor_to_pb(layer),
                                                           mounts=[mount_to_pb(m) for m in mounts]),
                                     metadata=self.conn.metadata())
        return descriptor_from_pb(resp.applied)

    @mapped
    async def compare(self, lower: list[Mount], upper: list[Mount], media_type: str = "", ref: str = "",
                      labels: Mapping[str, str] | None = None) -> Descriptor:
        req = diff_pb2.DiffRequest(left=[mount_to_pb(m) for m in lower], right=[mount_to_pb(m) for m in upper],
                                   media_type=media_type, ref=ref, labels=dict(labels or {}))
        return descriptor_from_pb((await self.stub.Diff(req, metadata=self.conn.metadata())).diff)
