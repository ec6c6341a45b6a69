"""Snapshots and Diff services, as the unpacker and ``pyctr snapshots`` use them.

:class:`AsyncSnapshotter` is one snapshotter of the daemon (``client.snapshotter("overlayfs")``):
prepare/view return the :class:`~pycontainerd.mount.Mount` list to mount (the client mounts,
the daemon never does); stat/list return :class:`SnapshotInfo`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from google.protobuf import field_mask_pb2

from ..api.services.diff.v1 import diff_pb2, diff_pb2_grpc
from ..api.services.snapshots.v1 import snapshots_pb2 as pb
from ..api.services.snapshots.v1 import snapshots_pb2_grpc
from ..descriptor import Descriptor
from ..mount import Mount
from ..wire.convert import (
    descriptor_from_pb,
    descriptor_to_pb,
    mount_from_pb,
    mount_to_pb,
)
from .connection import DEFAULT_SNAPSHOTTER  # noqa: F401  (its home before: still importable from here)
from .connection import Connection, mapped, mapped_stream

_KINDS = {pb.UNKNOWN: "Unknown", pb.VIEW: "View", pb.ACTIVE: "Active", pb.COMMITTED: "Committed"}


@dataclass(frozen=True)
class SnapshotInfo:
    """A snapshot: ``name`` (key of an active/view, name of a committed one), ``parent``
    (``""`` for a base), ``kind`` (``"View"``, ``"Active"``, ``"Committed"``), times in ns,
    labels."""

    name: str
    parent: str = ""
    kind: str = "Unknown"
    created_at: int = 0
    updated_at: int = 0
    labels: Mapping[str, str] = field(default_factory=dict)


def _snapshot_info(i: pb.Info) -> SnapshotInfo:
    return SnapshotInfo(i.name, i.parent, _KINDS.get(i.kind, "Unknown"), i.created_at.ToNanoseconds(),
                        i.updated_at.ToNanoseconds(), dict(i.labels))


@dataclass(frozen=True)
class Usage:
    """Disk usage of a snapshot: ``size`` in bytes, ``inodes``."""

    size: int
    inodes: int


class AsyncSnapshotter:
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
    async def stat(self, key: str) -> SnapshotInfo:
        """The snapshot's info. Raises :class:`NotFound`."""
        resp = await self.stub.Stat(pb.StatSnapshotRequest(snapshotter=self.name, key=key),
                                    metadata=self.conn.metadata())
        return _snapshot_info(resp.info)

    @mapped
    async def update_labels(self, key: str, labels: Mapping[str, str]) -> SnapshotInfo:
        """Set (or, with an empty value, remove) the given labels."""
        req = pb.UpdateSnapshotRequest(snapshotter=self.name, info=pb.Info(name=key, labels=dict(labels)),
                                       update_mask=field_mask_pb2.FieldMask(paths=[f"labels.{k}" for k in labels]))
        return _snapshot_info((await self.stub.Update(req, metadata=self.conn.metadata())).info)

    async def list(self, *filters: str) -> list[SnapshotInfo]:
        """Every snapshot matching any filter (all when none)."""
        out: list[SnapshotInfo] = []
        call = self.stub.List(pb.ListSnapshotsRequest(snapshotter=self.name, filters=list(filters)),
                              metadata=self.conn.metadata())
        async for resp in mapped_stream(call, self.conn):
            out.extend(_snapshot_info(i) for i in resp.info)
        return out

    @mapped
    async def usage(self, key: str) -> Usage:
        """Disk usage of ``key`` (for a committed snapshot: its own layer)."""
        resp = await self.stub.Usage(pb.UsageRequest(snapshotter=self.name, key=key), metadata=self.conn.metadata())
        return Usage(resp.size, resp.inodes)


SnapshotClient = AsyncSnapshotter
"""The earlier name of :class:`AsyncSnapshotter`."""


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
