"""Containers in the metadata database (containerd ``containers.Store`` over LMDB).

A container is metadata only — no process: an id, image name, runtime (name and options),
an OCI spec (opaque ``Any``), the snapshotter and snapshot key of its root filesystem,
labels and extensions. Records live at ``<ns>\\0containers\\0<id>``; the garbage collector
treats each as a root that holds its snapshot (``snapshotter`` + ``snapshot_key``).
"""

from __future__ import annotations

import json
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import replace
from types import MappingProxyType

from google.protobuf import any_pb2

from .. import filters, identifiers, labels as labels_mod, namespaces
from ..api.events import container_pb2
from ..errdefs import AlreadyExists, InvalidArgument, NotFound, quote
from ..events.exchange import Exchange
from ..memo import Memo
from ..records.containers import Container, Runtime
from ..typeurl import AnyValue
from .db import MetadataDB, Txn
from .keys import CONTAINERS, container_key, key_prefix
from .namespaces import ensure

TOPIC_CREATE = "/containers/create"
TOPIC_UPDATE = "/containers/update"
TOPIC_DELETE = "/containers/delete"


def validate(c: Container) -> None:
    """containerd's rules. Raises :class:`InvalidArgument`."""
    try:
        identifiers.validate(c.id)
    except InvalidArgument as exc:
        raise InvalidArgument(f"container.ID: {exc.context}") from exc
    if any(not k for k in c.extensions):
        raise InvalidArgument("container.Extension keys must not be zero-length")
    labels_mod.validate_all(c.labels)
    if not c.runtime.name:
        raise InvalidArgument("container.Runtime.Name must be set")
    if c.spec is None:
        raise InvalidArgument("container.Spec must be set")
    if c.snapshot_key and not c.snapshotter:
        raise InvalidArgument("container.Snapshotter must be set if container.SnapshotKey is set")


def _record(c: Container) -> dict:
    return {
        "image": c.image,
        "labels": dict(c.labels),
        "runtime": {"name": c.runtime.name, "options": c.runtime.options.to_json() if c.runtime.options else None},
        "spec": c.spec.to_json() if c.spec else None,
        "snapshotter": c.snapshotter,
        "snapshot_key": c.snapshot_key,
        "extensions": {k: v.to_json() for k, v in c.extensions.items()},
        "created_at": c.created_at,
        "updated_at": c.updated_at,
    }


def _container(cid: str, r: Mapping) -> Container:
    """A stored record as a :class:`Container`; its mappings are read-only, as records are
    shared by every reader (:class:`ContainerStore` memoizes them)."""
    return Container(
        id=cid,
        image=r["image"],
        labels=MappingProxyType(dict(r["labels"])),
        runtime=Runtime(r["runtime"]["name"], AnyValue.from_json(r["runtime"]["options"])),
        spec=AnyValue.from_json(r["spec"]),
        snapshotter=r["snapshotter"],
        snapshot_key=r["snapshot_key"],
        extensions=MappingProxyType({k: AnyValue.from_json(v) for k, v in r["extensions"].items()}),
        created_at=r["created_at"],
        updated_at=r["updated_at"],
    )


def adaptor(c: Container) -> filters.Adaptor:
    """Filter fields: ``id``, ``image``, ``runtime.name``, ``labels.<key>``."""

    def field_of(path):
        if path[0] == "labels":
            return filters.adapt_labels(path, c.labels)
        if tuple(path) == ("runtime", "name"):
            return c.runtime.name or None
        if len(path) == 1 and path[0] in ("id", "image"):
            return getattr(c, path[0]) or None
        return None

    return field_of


_DECODED: weakref.WeakKeyDictionary[MetadataDB, Memo[Container]] = weakref.WeakKeyDictionary()


class ContainerStore:
    """Namespaced container records with ``/containers/*`` events."""

    def __init__(self, db: MetadataDB, exchange: Exchange | None = None) -> None:
        self.db = db
        self.exchange = exchange
        self._decoded: Memo[Container] = _DECODED.setdefault(db, Memo())
        """The newest decoded record of each (namespace, id), with the bytes it came from:
        listing 1,000 containers decoded each one's JSON and spec on every call. A write
        stores other bytes (``updated_at`` at least), so a kept record answers only for
        the same bytes; a delete drops it, so deleted records are not kept (keyed by the
        bytes, a daemon running containers one after another grew by every record). One
        memo per database, shared by every store on it (the tasks service has its own
        store: a delete through the containers service must drop the record for both)."""

    def _decode(self, ns: str, cid: str, stored: bytes) -> Container:
        return self._decoded.current((ns, cid), stored, lambda: _container(cid, json.loads(stored)))

    def get(self, cid: str) -> Container:
        """Raises :class:`NotFound`."""
        ns = namespaces.required()
        stored = self.db.view(lambda txn: txn.get_bytes("objects", container_key(ns, cid)))
        if stored is None:
            raise NotFound(f"container {quote(cid)} in namespace {quote(ns)}")
        return self._decode(ns, cid, stored)

    def list(self, filter_texts: list[str] | tuple[str, ...] = ()) -> list[Container]:
        """Containers matching any filter, sorted by id. Raises :class:`InvalidArgument`."""
        ns = namespaces.required()
        match = filters.parse_all(filter_texts)
        prefix = key_prefix(ns, CONTAINERS)
        rows = self.db.view(lambda txn: list(txn.scan_bytes("objects", prefix)))
        out = (self._decode(ns, k[len(prefix):].decode(), v) for k, v in rows)
        return [c for c in out if match.match(adaptor(c))]

    async def create(self, c: Container, also: Callable[[Txn], None] | None = None) -> Container:
        """Raises :class:`InvalidArgument`, :class:`AlreadyExists`. ``also``: further writes
        committed in the same transaction (the CRI ends its lease with the record)."""
        ns = namespaces.required()
        try:
            validate(c)
        except InvalidArgument as exc:
            raise InvalidArgument(f"create container failed validation: {exc.context}") from exc
        now = time.time_ns()
        c = replace(c, created_at=now, updated_at=now)

        def txn_fn(txn: Txn) -> None:
            ensure(txn, ns)
            if not txn.put("objects", container_key(ns, c.id), _record(c), overwrite=False):
                raise AlreadyExists(f"container {quote(c.id)}")
            if also is not None:
                also(txn)

        await self.db.update(txn_fn)
        options = c.runtime.options
        runtime = container_pb2.ContainerCreate.Runtime(
            name=c.runtime.name,
            options=any_pb2.Any(type_url=options.type_url, value=options.value) if options else None,
        )
        self._publish(TOPIC_CREATE, container_pb2.ContainerCreate(id=c.id, image=c.image, runtime=runtime))
        return c

    async def update(self, c: Container, paths: list[str] | tuple[str, ...] = ()) -> Container:
        """Field paths as containerd: ``labels[.k]``, ``spec``, ``extensions[.k]``, ``image``,
        ``snapshotkey``; none means all of those, and then snapshotter and runtime name
        must be unchanged. Raises :class:`InvalidArgument`, :class:`NotFound`."""
        ns = namespaces.required()
        if not c.id:
            raise InvalidArgument("must specify a container id")

        def txn_fn(txn: Txn) -> Container:
            record = txn.get("objects", container_key(ns, c.id))
            if record is None:
                raise NotFound(f"container {quote(c.id)}")
            current = _container(c.id, record)
            fields = list(paths)
            if not fields:
                fields = ["labels", "spec", "extensions", "image", "snapshotkey"]
                if current.snapshotter != c.snapshotter:
                    raise InvalidArgument("container.Snapshotter field is immutable")
                if current.runtime.name != c.runtime.name:
                    raise InvalidArgument("container.Runtime.Name field is immutable")
            labels, extensions, updated = dict(current.labels), dict(current.extensions), current
            for path in fields:
                if path.startswith("labels."):
                    labels[path[7:]] = c.labels.get(path[7:], "")
                elif path.startswith("extensions."):
                    name = path[11:]
                    if name in c.extensions:
                        extensions[name] = c.extensions[name]
                    else:
                        extensions.pop(name, None)
                elif path == "labels":
                    labels = dict(c.labels)
                elif path == "extensions":
                    extensions = dict(c.extensions)
                elif path == "spec":
                    updated = replace(updated, spec=c.spec)
                elif path == "image":
                    updated = replace(updated, image=c.image)
                elif path == "snapshotkey":
                    updated = replace(updated, snapshot_key=c.snapshot_key)
                else:
                    raise InvalidArgument(f"cannot update {quote(path)} field on {quote(c.id)}")
            updated = replace(updated, labels={k: v for k, v in labels.items() if v}, extensions=extensions,
                              updated_at=time.time_ns())
            try:
                validate(updated)
            except InvalidArgument as exc:
                raise InvalidArgument(f"update failed validation: {exc.context}") from exc
            txn.put("objects", container_key(ns, c.id), _record(updated))
            return updated

        updated = await self.db.update(txn_fn)
        self._publish(TOPIC_UPDATE, container_pb2.ContainerUpdate(
            id=updated.id, image=updated.image, labels=dict(updated.labels), snapshot_key=updated.snapshot_key))
        return updated

    async def delete(self, cid: str) -> None:
        """Delete the record (its snapshot becomes collectable). Raises :class:`NotFound`."""
        ns = namespaces.required()

        def txn_fn(txn: Txn) -> None:
            if not self.delete_in(txn, ns, cid):
                raise NotFound(f"container {quote(cid)}")

        await self.db.update(txn_fn)
        self.deleted(cid)

    @staticmethod
    def delete_in(txn: Txn, ns: str, cid: str) -> bool:
        """Delete the record inside the caller's write transaction (with other writes that
        must commit with it); False when there is none. Call :meth:`deleted` after the commit."""
        return txn.delete("objects", container_key(ns, cid))

    def deleted(self, cid: str) -> None:
        """After a committed :meth:`delete_in` (in its namespace): publish ``/containers/delete``."""
        self._decoded.discard((namespaces.required(), cid))
        self._publish(TOPIC_DELETE, container_pb2.ContainerDelete(id=cid))

    def _publish(self, topic: str, event) -> None:
        if self.exchange is not None:
            self.exchange.publish(topic, event)
