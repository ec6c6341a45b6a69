"""Leases (containerd ``leases.Manager`` over LMDB): named, optionally expiring holds that
keep content, ingests and snapshots from garbage collection while a client works.

Keys::

    <ns>\\0leases\\0<id>                                   -> {"labels", "created_at"}
    <ns>\\0leases\\0<id>\\0content\\0<digest>                -> {}
    <ns>\\0leases\\0<id>\\0ingests\\0<ref>                   -> {}
    <ns>\\0leases\\0<id>\\0snapshots\\0<snapshotter>\\0<key>   -> {}

A lease with label ``containerd.io/gc.expire`` (RFC 3339 time) is removed by the garbage
collector once that time has passed. A request carrying the gRPC metadata key
``containerd-lease`` attaches what it creates to that lease (see
:mod:`pycontainerd.leases_context`).
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Mapping

from .. import digest as digest_mod, filters, labels as labels_mod, namespaces
from ..errdefs import AlreadyExists, InvalidArgument, NotFound, NotImplementedYet, quote
from ..records.leases import Lease, Resource
from .db import MetadataDB, Txn
from .keys import LEASES, key_prefix, lease_key, lease_resource_key, parse
from .namespaces import ensure

def resource_key_parts(resource: Resource) -> tuple[str, ...]:
    """Validate a resource and return its key parts below the lease.

    Raises:
        InvalidArgument: malformed type or content digest.
        NotImplementedYet: an unknown resource type (containerd: "not supported yet").
    """
    parts = resource.type.split("/")
    kind = parts[0]
    if kind in ("content", "ingests"):
        if len(parts) != 1:
            raise InvalidArgument(f"invalid resource type {resource.type}")
        if kind == "content":
            try:
                digest_mod.validate(resource.id)
            except InvalidArgument as exc:
                raise InvalidArgument(f"invalid content resource id {resource.id}: {exc.context}") from exc
        return (kind, resource.id)
    if kind == "snapshots":
        if len(parts) != 2 or not parts[1]:
            raise InvalidArgument(f"invalid snapshot resource type {resource.type}")
        return (kind, parts[1], resource.id)
    raise NotImplementedYet(f"resource type {resource.type} not supported yet")


def require_lease(txn: Txn, ns: str, lease_id: str) -> None:
    """Raise :class:`NotFound` unless the lease exists (used when attaching objects)."""
    if txn.get("objects", lease_key(ns, lease_id)) is None:
        raise NotFound(f"lease {quote(lease_id)}")


def add_resource_txn(txn: Txn, ns: str, lease_id: str, resource: Resource) -> None:
    """Attach ``resource`` to the lease inside ``txn``. Raises :class:`NotFound`."""
    parts = resource_key_parts(resource)
    require_lease(txn, ns, lease_id)
    txn.put("objects", lease_resource_key(ns, lease_id, *parts), {})


def _adaptor(lease: Lease) -> filters.Adaptor:
    def field_of(path):
        if path[0] == "id" and len(path) == 1:
            return lease.id or None
        if path[0] == "labels":
            return filters.adapt_labels(path, lease.labels)
        return None

    return field_of


class LeaseStore:
    """Create, list and delete leases and their resources in the request's namespace."""

    def __init__(self, db: MetadataDB, gc=None) -> None:
        self.db = db
        self.gc = gc

    async def create(self, lease_id: str, labels: Mapping[str, str] | None = None) -> Lease:
        """Create a lease; an empty ``lease_id`` gets a random one (as containerd's Leases
        service does). Raises :class:`InvalidArgument` (bad labels), :class:`AlreadyExists`."""
        ns = namespaces.required()
        lease = self.new(lease_id, labels)
        await self.db.update(lambda txn: self.create_in(txn, ns, lease))
        return lease

    @staticmethod
    def new(lease_id: str, labels: Mapping[str, str] | None = None) -> Lease:
        """A lease not written yet (a random id for an empty ``lease_id``). Raises
        :class:`InvalidArgument` (bad labels)."""
        if not lease_id:
            lease_id = f"{time.time_ns() % 1_000_000_000}-{base64.urlsafe_b64encode(os.urandom(3)).decode()}"
        return Lease(lease_id, labels_mod.validate_all(labels or {}), time.time_ns())

    @staticmethod
    def create_in(txn: Txn, ns: str, lease: Lease) -> None:
        """Write ``lease`` inside the caller's write transaction (with the first write it
        holds, so both commit at once). Raises :class:`AlreadyExists`."""
        ensure(txn, ns)
        record = {"labels": dict(lease.labels), "created_at": lease.created_at}
        if not txn.put("objects", lease_key(ns, lease.id), record, overwrite=False):
            raise AlreadyExists(f"lease {quote(lease.id)}")

    def list(self, filter_texts: list[str] | tuple[str, ...] = ()) -> list[Lease]:
        """Leases matching any filter (fields ``id``, ``labels.<k>``). Raises :class:`InvalidArgument`."""
        ns = namespaces.required()
        match = filters.parse_all(filter_texts)
        rows = key_prefix(ns, LEASES)

        def view(txn: Txn) -> list[Lease]:
            out = []
            for k, v in txn.scan("objects", rows):
                parsed = parse(k)
                if parsed is None or parsed.lease:
                    continue  # a resource row
                out.append(Lease(str(parsed.id), dict(v["labels"]), v["created_at"]))
            return out

        return [lease for lease in self.db.view(view) if match.match(_adaptor(lease))]

    async def delete(self, lease_id: str, sync: bool = False) -> None:
        """Delete the lease and its resource rows; what it held becomes collectable.
        ``sync`` waits for a garbage collection. Raises :class:`NotFound`."""
        ns = namespaces.required()

        def txn_fn(txn: Txn) -> None:
            if not self.delete_in(txn, ns, lease_id):
                raise NotFound(f"lease {quote(lease_id)}")

        await self.db.update(txn_fn)
        if self.gc is not None:
            if sync:
                await self.gc.collect()
            else:
                self.deleted()

    @staticmethod
    def delete_in(txn: Txn, ns: str, lease_id: str) -> bool:
        """Delete the lease and its resource rows inside the caller's write transaction;
        False when there is none. Call :meth:`deleted` after the commit."""
        if not txn.delete("objects", lease_key(ns, lease_id)):
            return False
        txn.delete_prefix("objects", key_prefix(ns, LEASES, lease_id))
        return True

    def deleted(self) -> None:
        """After a committed :meth:`delete_in`: what it held may be collectable now."""
        if self.gc is not None:
            self.gc.schedule()

    async def add_resource(self, lease_id: str, resource: Resource) -> None:
        """Raises :class:`NotFound` (lease), :class:`InvalidArgument`, :class:`NotImplementedYet`."""
        ns = namespaces.required()
        await self.db.update(lambda txn: add_resource_txn(txn, ns, lease_id, resource))

    async def delete_resource(self, lease_id: str, resource: Resource) -> None:
        """Detach a resource (absent resources are fine). Raises :class:`NotFound` (lease)."""
        ns = namespaces.required()
        parts = resource_key_parts(resource)

        def txn_fn(txn: Txn) -> None:
            require_lease(txn, ns, lease_id)
            txn.delete("objects", lease_resource_key(ns, lease_id, *parts))

        await self.db.update(txn_fn)
        if self.gc is not None:
            self.gc.schedule()

    def list_resources(self, lease_id: str) -> list[Resource]:
        """Resources held by the lease. Raises :class:`NotFound`."""
        ns = namespaces.required()
        rows = key_prefix(ns, LEASES, lease_id)

        def view(txn: Txn) -> list[Resource]:
            require_lease(txn, ns, lease_id)
            out = []
            for k, _ in txn.scan("objects", rows):
                held = parse(k)
                if held is None or not held.lease:
                    continue
                if isinstance(held.id, tuple):
                    out.append(Resource(id=held.id[1], type=f"{held.kind}/{held.id[0]}"))
                else:
                    out.append(Resource(id=held.id, type=held.kind))
            return out

        return self.db.view(view)
