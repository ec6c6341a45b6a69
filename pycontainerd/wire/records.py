"""Records ⇄ the protobuf messages of containerd's v1 services: containers, images, leases
(and their resources), namespaces, snapshot infos, content infos and ingest statuses."""

from __future__ import annotations

from google.protobuf import any_pb2

from ..api.services.containers.v1 import containers_pb2
from ..api.services.content.v1 import content_pb2
from ..api.services.images.v1 import images_pb2
from ..api.services.leases.v1 import leases_pb2
from ..api.services.namespaces.v1 import namespace_pb2
from ..api.services.snapshots.v1 import snapshots_pb2
from ..content import Info as ContentInfo
from ..content import Status as ContentStatus
from ..records.containers import Container, Runtime
from ..records.images import Image
from ..records.leases import Lease, Resource
from ..records.namespaces import Namespace
from ..snapshots.types import Info as SnapshotInfo
from ..snapshots.types import Kind
from ..typeurl import AnyValue
from .convert import descriptor_from_pb, descriptor_to_pb, nanoseconds, timestamp


def _any_pb(v: AnyValue | None) -> any_pb2.Any | None:
    return None if v is None else any_pb2.Any(type_url=v.type_url, value=v.value)


def _any(v: any_pb2.Any, present: bool) -> AnyValue | None:
    return AnyValue(v.type_url, v.value) if present else None


# -- containers ---------------------------------------------------------------------------


def container_to_pb(c: Container) -> containers_pb2.Container:
    return containers_pb2.Container(
        id=c.id,
        labels=dict(c.labels),
        image=c.image,
        runtime=containers_pb2.Container.Runtime(name=c.runtime.name, options=_any_pb(c.runtime.options)),
        spec=_any_pb(c.spec),
        snapshotter=c.snapshotter,
        snapshot_key=c.snapshot_key,
        created_at=timestamp(c.created_at),
        updated_at=timestamp(c.updated_at),
        extensions={k: _any_pb(v) for k, v in c.extensions.items()},
    )


def container_from_pb(c: containers_pb2.Container) -> Container:
    """The record as a request carries it: times are the store's to set, so they stay 0."""
    return Container(
        id=c.id,
        labels=dict(c.labels),
        image=c.image,
        runtime=Runtime(c.runtime.name, _any(c.runtime.options, c.runtime.HasField("options"))),
        spec=_any(c.spec, c.HasField("spec")),
        snapshotter=c.snapshotter,
        snapshot_key=c.snapshot_key,
        extensions={k: AnyValue(v.type_url, v.value) for k, v in c.extensions.items()},
    )


# -- images -------------------------------------------------------------------------------


def image_to_pb(image: Image) -> images_pb2.Image:
    return images_pb2.Image(
        name=image.name,
        labels=dict(image.labels),
        target=descriptor_to_pb(image.target),
        created_at=timestamp(image.created_at),
        updated_at=timestamp(image.updated_at),
    )


def image_from_pb(image: images_pb2.Image) -> Image:
    """The record as a request carries it: times stay 0 (the store sets them)."""
    return Image(name=image.name, labels=dict(image.labels), target=descriptor_from_pb(image.target))


# -- leases -------------------------------------------------------------------------------


def lease_to_pb(lease: Lease) -> leases_pb2.Lease:
    return leases_pb2.Lease(id=lease.id, labels=dict(lease.labels), created_at=timestamp(lease.created_at))


def lease_from_pb(lease: leases_pb2.Lease) -> Lease:
    return Lease(lease.id, dict(lease.labels), lease.created_at.ToNanoseconds())


def resource_to_pb(r: Resource) -> leases_pb2.Resource:
    return leases_pb2.Resource(id=r.id, type=r.type)


def resource_from_pb(r: leases_pb2.Resource) -> Resource:
    return Resource(id=r.id, type=r.type)


# -- namespaces ---------------------------------------------------------------------------


def namespace_to_pb(ns: Namespace) -> namespace_pb2.Namespace:
    return namespace_pb2.Namespace(name=ns.name, labels=ns.labels)


def namespace_from_pb(ns: namespace_pb2.Namespace) -> Namespace:
    return Namespace(ns.name, dict(ns.labels))


# -- snapshots ----------------------------------------------------------------------------


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


# -- content ------------------------------------------------------------------------------


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
