"""Conversions between core types and the protobuf messages of containerd's API, shared by
the servicers, the client, the CRI plugin and the runtime: descriptors, mounts and
timestamps (nanoseconds since the epoch ⇄ ``google.protobuf.Timestamp``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from google.protobuf import timestamp_pb2

from ..api.types import descriptor_pb2, mount_pb2
from ..descriptor import Descriptor
from ..errdefs import InvalidArgument

if TYPE_CHECKING:
    from ..mount import Mount


def descriptor_to_pb(d: Descriptor) -> descriptor_pb2.Descriptor:
    return descriptor_pb2.Descriptor(
        media_type=d.media_type, digest=d.digest, size=d.size, annotations=dict(d.annotations)
    )


def descriptor_from_pb(d: descriptor_pb2.Descriptor) -> Descriptor:
    return Descriptor(media_type=d.media_type, digest=d.digest, size=d.size, annotations=dict(d.annotations))


def timestamp(ns: int) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(ns)
    return ts


def nanoseconds(ts: timestamp_pb2.Timestamp) -> int:
    """Raises InvalidArgument for a timestamp out of protobuf's range (nanos outside
    0..999,999,999, seconds outside years 1..9999)."""
    try:
        return ts.ToNanoseconds()
    except ValueError as exc:
        raise InvalidArgument(f"invalid timestamp: {exc}") from exc


def mount_to_pb(m: Mount) -> mount_pb2.Mount:
    return mount_pb2.Mount(type=m.type, source=m.source, target=m.target, options=list(m.options))


def mount_from_pb(m: mount_pb2.Mount) -> Mount:
    from ..mount import Mount  # with the mount syscalls (ctypes): not for every user of timestamps

    return Mount(type=m.type, source=m.source, options=tuple(m.options), target=m.target)
