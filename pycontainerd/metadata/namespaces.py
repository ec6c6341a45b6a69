"""Namespaces in the metadata database (containerd's Namespaces service semantics).

A namespace is a record in the ``namespaces`` database holding its labels. Objects of other
kinds live under ``<ns>\\0...`` in ``objects``; a namespace can be deleted only when none
remain (``FAILED_PRECONDITION`` naming what is left, as containerd words it).
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from .. import identifiers
from .. import labels as labels_mod
from ..errdefs import AlreadyExists, FailedPrecondition, NotFound, quote
from ..api.events import namespace_pb2
from ..events.exchange import Exchange
from ..records.namespaces import Namespace
from .db import MetadataDB, Txn
from .keys import BLOB, CONTENT, key, key_prefix, namespace_key, split

TOPIC_CREATE = "/namespaces/create"
TOPIC_UPDATE = "/namespaces/update"
TOPIC_DELETE = "/namespaces/delete"

# objects-db kinds that keep a namespace from being deleted, with containerd's words.
_BLOCKING_KINDS = {"image": "images", "containers": "containers"}


def ensure(txn: Txn, name: str) -> None:
    """Create namespace ``name`` inside ``txn`` if missing (what every object create does,
    like containerd's ``createBucketIfNotExists`` on ``v1/<ns>``)."""
    identifiers.validate(name)
    if txn.get("namespaces", namespace_key(name)) is None:
        txn.put("namespaces", namespace_key(name), {"labels": {}, "created_at": time.time_ns()})


def remaining_kinds(txn: Txn, name: str) -> list[str]:
    """Which kinds of object still live in namespace ``name`` (``images``, ``blobs``,
    ``containers``, ``snapshots on "<snapshotter>" snapshotter``), as containerd lists them.
    Leases, ingests in progress and sandboxes do not keep a namespace alive."""
    out: list[str] = []
    objects = key_prefix(name)
    cursor_key = txn.first_key("objects", objects)
    while cursor_key is not None:
        parts = split(cursor_key[len(objects) :])
        kind = parts[0]
        if kind == "snapshots" and len(parts) > 1:
            out.append(f'snapshots on "{parts[1]}" snapshotter')
            skip = objects + key(kind, parts[1]) + b"\x01"
        elif kind == "content":
            if txn.first_key("objects", objects + key_prefix(CONTENT, BLOB)) is not None:
                out.append("blobs")
            skip = objects + key(kind) + b"\x01"
        else:
            if kind in _BLOCKING_KINDS:
                out.append(_BLOCKING_KINDS[kind])
            skip = objects + key(kind) + b"\x01"
        cursor_key = txn.first_key("objects", objects, start=skip)
    return out


class NamespaceStore:
    """Create, read, update and delete namespaces; publishes ``/namespaces/*`` events."""

    def __init__(self, db: MetadataDB, exchange: Exchange | None = None) -> None:
        self.db = db
        self.exchange = exchange

    def get(self, name: str) -> Namespace:
        """The namespace's labels; like containerd's ``namespaceStore.Labels`` (what its
        ``Namespaces.Get`` calls), a namespace that does not exist reads as one with no
        labels rather than NotFound."""
        record = self.db.view(lambda txn: txn.get("namespaces", namespace_key(name)))
        return Namespace(name, dict(record["labels"]) if record is not None else {})

    def list(self) -> list[Namespace]:
        """All namespaces, sorted by name."""
        rows = self.db.view(lambda txn: list(txn.scan("namespaces", b"")))
        return [Namespace(k.decode(), dict(v["labels"])) for k, v in rows]

    async def create(self, name: str, labels: Mapping[str, str] | None = None) -> Namespace:
        """Create a namespace.

        Raises:
            InvalidArgument: bad name or labels.
            AlreadyExists: the namespace exists.
        """
        identifiers.validate(name)
        clean = labels_mod.validate_all(labels or {})

        def txn_fn(txn: Txn) -> None:
            record = {"labels": clean, "created_at": time.time_ns()}
            if not txn.put("namespaces", namespace_key(name), record, overwrite=False):
                raise AlreadyExists(f"namespace {quote(name)}")

        await self.db.update(txn_fn)
        ns = Namespace(name, clean)
        self._publish(TOPIC_CREATE, name, ns.labels)
        return ns

    async def update(self, name: str, labels: Mapping[str, str], paths: list[str]) -> Namespace:
        """Set labels by field paths (``labels.<key>``; none = replace all labels).

        As in containerd (``SetLabel`` creates the namespace's label bucket), an update that
        sets a label (any ``labels.<key>`` path, or a full replace with labels) of a
        namespace that does not exist creates it; a full replace with no labels leaves it
        absent.

        Raises:
            InvalidArgument: a path other than ``labels``/``labels.<key>``, or bad labels.
        """
        identifiers.validate(name)

        def txn_fn(txn: Txn) -> dict[str, str]:
            record = txn.get("namespaces", namespace_key(name))
            if record is None:
                if not paths and not labels:
                    return {}
                record = {"labels": {}, "created_at": time.time_ns()}
            record["labels"] = labels_mod.apply_field_paths(
                record["labels"], labels, paths, f"namespace {quote(name)}"
            )
            txn.put("namespaces", namespace_key(name), record)
            return record["labels"]

        new_labels = await self.db.update(txn_fn)
        self._publish(TOPIC_UPDATE, name, new_labels)
        return Namespace(name, new_labels)

    async def delete(self, name: str) -> None:
        """Delete an empty namespace.

        Raises:
            NotFound: no such namespace.
            FailedPrecondition: objects remain in it (the message lists their kinds).
        """
        identifiers.validate(name)

        def txn_fn(txn: Txn) -> None:
            if txn.get("namespaces", namespace_key(name)) is None:
                raise NotFound(f"namespace {quote(name)}")
            kinds = remaining_kinds(txn, name)
            if kinds:
                raise FailedPrecondition(
                    f"namespace {quote(name)} must be empty, but it still has {', '.join(kinds)}"
                )
            txn.delete("namespaces", namespace_key(name))

        await self.db.update(txn_fn)
        self._publish(TOPIC_DELETE, name, None)

    def _publish(self, topic: str, name: str, labels: Mapping[str, str] | None) -> None:
        if self.exchange is None:
            return
        if topic == TOPIC_DELETE:
            event = namespace_pb2.NamespaceDelete(name=name)
        elif topic == TOPIC_CREATE:
            event = namespace_pb2.NamespaceCreate(name=name, labels=labels or {})
        else:
            event = namespace_pb2.NamespaceUpdate(name=name, labels=labels or {})
        self.exchange.publish(topic, event, namespace=name)
