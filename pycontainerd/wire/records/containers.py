"""Container records ⇄ ``containerd.services.containers.v1.Container``."""

from __future__ import annotations

from google.protobuf import any_pb2

from ...api.services.containers.v1 import containers_pb2
from ...records.containers import Container, Runtime
from ...typeurl import AnyValue
from ..convert import timestamp


def _any_pb(v: AnyValue | None) -> any_pb2.Any | None:
    return None if v is None else any_pb2.Any(type_url=v.type_url, value=v.value)


def _any(v: any_pb2.Any, present: bool) -> AnyValue | None:
    return AnyValue(v.type_url, v.value) if present else None


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
