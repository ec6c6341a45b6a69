"""Leases and their resources ⇄ ``containerd.services.leases.v1``."""

from __future__ import annotations

from ...api.services.leases.v1 import leases_pb2
from ...records.leases import Lease, Resource
from ..convert import timestamp


def lease_to_pb(lease: Lease) -> leases_pb2.Lease:
    return leases_pb2.Lease(id=lease.id, labels=dict(lease.labels), created_at=timestamp(lease.created_at))


def lease_from_pb(lease: leases_pb2.Lease) -> Lease:
    return Lease(lease.id, dict(lease.labels), lease.created_at.ToNanoseconds())


def resource_to_pb(r: Resource) -> leases_pb2.Resource:
    return leases_pb2.Resource(id=r.id, type=r.type)


def resource_from_pb(r: leases_pb2.Resource) -> Resource:
    return Resource(id=r.id, type=r.type)
