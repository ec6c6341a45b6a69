"""Content infos and ingest statuses ⇄ ``containerd.services.content.v1``."""

from __future__ import annotations

from ...api.services.content.v1 import content_pb2
from ...content import Info as ContentInfo
from ...content import Status as ContentStatus
from ..convert import timestamp


def content_info_to_pb(info: ContentInfo) -> content_pb2.Info:
    return content_pb2.Info(
        digest=info.digest,
        size=info.size,
        created_at=timestamp(info.created_at),
        updated_at=timestamp(info.updated_at),
        labels=info.labels,
    )


def content_status_to_pb(status: ContentStatus) -> content_pb2.Status:
    return content_pb2.Status(
        started_at=timestamp(status.started_at),
        updated_at=timestamp(status.updated_at),
        ref=status.ref,
        offset=status.offset,
        total=status.total,
        expected=status.expected,
    )
