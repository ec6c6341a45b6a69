"""Snapshot infos ⇄ ``containerd.services.snapshots.v1.Info``."""

from __future__ import annotations

from ...api.services.snapshots.v1 import snapshots_pb2
from ...snapshots.types import Info as SnapshotInfo
from ...snapshots.types import Kind
from ..convert import nanoseconds, timestamp


def snapshot_info_to_pb(info: SnapshotInfo) -> snapshots_pb2.Info:
    return snapshots_pb2.Info(
        name=info.name,
        parent=info.parent,
        kind=int(info.kind) if info.kind != Kind.UNKNOWN else int(Kind.COMMITTED),
        created_at=timestamp(info.created_at),
        updated_at=timestamp(info.updated_at),
        labels=dict(info.labels),
    )


def snapshot_info_from_pb(info: snapshots_pb2.Info) -> SnapshotInfo:
    kind = Kind(info.kind) if info.kind in (Kind.ACTIVE, Kind.VIEW) else Kind.COMMITTED
    return SnapshotInfo(
        name=info.name,
        parent=info.parent,
        kind=kind,
        labels=dict(info.labels),
        created_at=nanoseconds(info.created_at),
        updated_at=nanoseconds(info.updated_at),
    )
