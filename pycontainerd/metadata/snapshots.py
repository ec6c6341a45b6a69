"""The namespaced snapshotter (containerd's ``metadata/snapshot.go``): what every client
sees of a backend snapshotter.

Records, one per snapshot key of a namespace (JSON, in the ``objects`` database)::

    <ns>\\0snapshots\\0<snapshotter>\\0<key> -> {"name": <backend key>, "parent": <parent key
                                              in this namespace or "">, "labels": {...},
                                              "created_at": ns, "updated_at": ns}
    meta: snapshots.seq\\0<ns>\\0<snapshotter> -> n   last sequence number handed out

The backend knows snapshots by *backend keys* ``<ns>/<n>/<key>`` (``n`` from the sequence),
so the same key in two namespaces never collides and a key can be reused at once after a
remove. A namespace sees only its own records: kind and usage come from the backend, the
name, parent, labels and times from the record (backend labels show through unless the
record has the same key). Only labels named ``containerd.io/snapshot.ref`` or prefixed
``containerd.io/snapshot/`` are passed to the backend.

Sharing across namespaces (containerd's "target already exists" path used by unpack): a
Prepare or View labelled ``containerd.io/snapshot.ref=<target>`` fails with
``ALREADY_EXISTS`` if ``<target>`` exists in this namespace; if instead the backend holds a
committed snapshot with that label and the same backend parent (committed in another
namespace), ``<target>`` is linked into this namespace — a record pointing at that backend
snapshot — and the call fails with ``ALREADY_EXISTS`` so the unpacker skips the layer.

Removal only drops the record (``FAILED_PRECONDITION`` while another record names it as
parent) and asks the garbage collector for a collection; :meth:`SnapshotStore.sweep`, run by
the collector inside its write transaction, removes every backend snapshot that no record
of any namespace names (children first), then runs the backend's cleanup. Backend snapshots
being created right now are never swept (they are held in memory until their record is
written).

Leases: with a lease in the context (gRPC header ``containerd-lease``) a new key or name is
recorded as ``<ns>\\0leases\\0<lease>\\0snapshots\\0<snapshotter>\\0<key>`` in the same
transaction (``NOT_FOUND`` if the lease does not exist); a commit moves the hold from the key
to the name.

Events, published after the transaction commits: ``/snapshot/prepare``
(``containerd.events.SnapshotPrepare``), ``/snapshot/commit``, ``/snapshot/remove``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from .. import filters as filters_mod
from .. import labels as labels_mod
from .. import leases_context, namespaces
from ..api.events import snapshot_pb2
from ..errdefs import (
    AlreadyExists,
    ContainerdError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    quote,
)
from ..events.exchange import Exchange
from ..log import get_logger
from ..mount import Mount
from ..snapshots.types import (
    LABEL_SNAPSHOT_REF,
    Info,
    Kind,
    SyncSnapshotter,
    Usage,
    adaptor,
    inherited_labels,
)
from .db import MetadataDB, Txn
from .keys import SNAPSHOTS, key_prefix, lease_resource_key, snapshot_seq_key
from .keys import snapshot_key as record_key
from .leases import Resource, add_resource_txn, require_lease
from .namespaces import ensure

log = get_logger("snapshots")

TOPIC_PREPARE = "/snapshot/prepare"
TOPIC_COMMIT = "/snapshot/commit"
TOPIC_REMOVE = "/snapshot/remove"


class GCScheduler(Protocol):
    def schedule(self, *dirty: str) -> None: ...


def _validate_labels(labels: Mapping[str, str] | None) -> dict[str, str]:
    try:
        return labels_mod.validate_all({k: v for k, v in (labels or {}).items() if v})
    except InvalidArgument as exc:
        raise InvalidArgument(f"info.Labels: {exc.context}") from exc


def _overlay_info(backend: Info, snapshot_key: str, record: Mapping[str, Any]) -> Info:
    return Info(
        name=snapshot_key,
        parent=record.get("parent", ""),
        kind=backend.kind,
        labels={**backend.labels, **(record.get("labels") or {})},
        created_at=int(record.get("created_at", 0)),
        updated_at=int(record.get("updated_at", 0)),
    )


class SnapshotStore:
    """One backend snapshotter as the current request's namespace sees it (implements
    :class:`~pycontainerd.snapshots.types.Snapshotter`).

    Args:
        db: the metadata database.
        name: the snapshotter's name (``overlayfs``, ``native``), part of every key.
        backend: the backend, with the blocking calls of
            :class:`~pycontainerd.snapshots.types.SyncSnapshotter`.
        exchange: where events go (None: none).
        gc: asked for a collection after each remove (None: removes only drop records).
    """

    def __init__(
        self,
        db: MetadataDB,
        name: str,
        backend: SyncSnapshotter,
        exchange: Exchange | None = None,
        gc: GCScheduler | None = None,
    ) -> None:
        self.db = db
        self.name = name
        self.backend = backend
        self.exchange = exchange
        self.gc = gc
        self._inflight: set[str] = set()
        self._inflight_lock = threading.Lock()

    # ------------------------------------------------------------------ helpers

    def _key(self, ns: str, snapshot_key: str, what: str = "key") -> bytes:
        if not snapshot_key:
            raise InvalidArgument(f"snapshot {what} must not be empty")
        raw = record_key(ns, self.name, snapshot_key)
        # the backend key "<ns>/<n>/<key>" must fit an LMDB key as well (20 digits for n)
        limit = self.db.max_key_size - 24
        if len(raw) > limit:
            raise InvalidArgument(f"snapshot {what} {quote(snapshot_key[:40] + '...')} is too long")
        return raw

    def _get(self, txn: Txn, ns: str, snapshot_key: str) -> dict[str, Any] | None:
        if not snapshot_key or "\0" in snapshot_key:
            return None
        return txn.get("objects", record_key(ns, self.name, snapshot_key))

    def _next_key(self, txn: Txn, ns: str, snapshot_key: str) -> str:
        seq_key = snapshot_seq_key(ns, self.name)
        seq = int(txn.get("meta", seq_key) or 0) + 1
        txn.put("meta", seq_key, seq)
        return f"{ns}/{seq}/{snapshot_key}"

    def _resolve(self, ns: str, snapshot_key: str) -> str:
        record = self.db.view(lambda txn: self._get(txn, ns, snapshot_key))
        if record is None:
            raise NotFound(f"snapshot {snapshot_key} does not exist")
        return record["name"]

    def _children(self, txn: Txn, ns: str, snapshot_key: str) -> Iterator[str]:
        prefix = key_prefix(ns, SNAPSHOTS, self.name)
        for k, record in txn.scan("objects", prefix):
            if record.get("parent") == snapshot_key:
                yield k[len(prefix):].decode()

    def _lease_add(self, txn: Txn, ns: str, lease: str | None, snapshot_key: str) -> None:
        if lease:
            add_resource_txn(txn, ns, lease, Resource(id=snapshot_key, type=f"snapshots/{self.name}"))

    def _lease_remove(self, txn: Txn, ns: str, lease: str | None, snapshot_key: str) -> None:
        if lease:
            txn.delete("objects", lease_resource_key(ns, lease, SNAPSHOTS, self.name, snapshot_key))

    def _publish(self, topic: str, event, ns: str) -> None:
        if self.exchange is not None:
            self.exchange.publish(topic, event, namespace=ns)

    # ------------------------------------------------------------------ reads

    async def stat(self, snapshot_key: str) -> Info:
        """Raises :class:`NotFound`."""
        ns = namespaces.required()
        record = self.db.view(lambda txn: self._get(txn, ns, snapshot_key))
        if record is None:
            raise NotFound(f"snapshot {snapshot_key} does not exist")
        return _overlay_info(self.backend.stat_sync(record["name"]), snapshot_key, record)

    async def usage(self, snapshot_key: str) -> Usage:
        """Raises :class:`NotFound`."""
        bkey = self._resolve(namespaces.required(), snapshot_key)
        return await asyncio.to_thread(self.backend.usage_sync, bkey)

    async def mounts(self, snapshot_key: str) -> list[Mount]:
        """Raises :class:`NotFound`, :class:`FailedPrecondition` (committed)."""
        bkey = self._resolve(namespaces.required(), snapshot_key)
        return self.backend.mounts_sync(bkey)

    async def walk(self, filters: Sequence[str] = ()) -> list[Info]:
        """This namespace's snapshots matching any filter (fields ``kind``, ``name``,
        ``parent``, ``labels.<key>``), in key order. Raises :class:`InvalidArgument`."""
        ns = namespaces.required()
        match = filters_mod.parse_all(filters)
        prefix = key_prefix(ns, SNAPSHOTS, self.name)
        rows = self.db.view(lambda txn: list(txn.scan("objects", prefix)))
        out = []
        for k, record in rows:
            try:
                backend_info = self.backend.stat_sync(record["name"])
            except NotFound:
                continue
            info = _overlay_info(backend_info, k[len(prefix):].decode(), record)
            if match.match(adaptor(info)):
                out.append(info)
        return out

    # ------------------------------------------------------------------ writes

    async def prepare(self, snapshot_key: str, parent: str = "", labels: Mapping[str, str] | None = None,
                      also: Callable[[Txn], None] | None = None) -> list[Mount]:
        """Create active snapshot ``snapshot_key`` on committed ``parent``; publish
        ``/snapshot/prepare``. ``also``: further writes committed in the same transaction,
        made first (the CRI writes the lease that holds the snapshot with it).

        Raises:
            AlreadyExists: the key exists, or the ``containerd.io/snapshot.ref`` target does
                (in which case it is now linked into this namespace).
            NotFound: the parent or the context's lease does not exist.
            InvalidArgument: bad key or labels, or a parent that is not committed.
        """
        ns, mounts = await self._create(snapshot_key, parent, labels, readonly=False, also=also)
        self._publish(TOPIC_PREPARE, snapshot_pb2.SnapshotPrepare(key=snapshot_key, parent=parent), ns)
        return mounts

    async def view(self, snapshot_key: str, parent: str = "", labels: Mapping[str, str] | None = None) -> list[Mount]:
        """Create a read-only view of committed ``parent`` (errors as :meth:`prepare`;
        no event, as in containerd)."""
        _, mounts = await self._create(snapshot_key, parent, labels, readonly=True)
        return mounts

    async def _create(
        self, snapshot_key: str, parent: str, labels: Mapping[str, str] | None, readonly: bool,
        also: Callable[[Txn], None] | None = None,
    ) -> tuple[str, list[Mount]]:
        ns = namespaces.required()
        lease = leases_context.get()
        base = _validate_labels(labels)
        self._key(ns, snapshot_key)
        target = base.get(LABEL_SNAPSHOT_REF, "")

        held: list[str] = []  # the backend key, kept from sweeps until its record commits
        created: list[str] = []  # the backend key, once the backend made it

        def create(txn: Txn) -> list[Mount] | None:
            # One metadata transaction around the backend's own, as containerd's: checks,
            # sequence number, backend snapshot, record and lease hold commit together.
            if also is not None:
                also(txn)
            if lease:
                require_lease(txn, ns, lease)
            if target and self._get(txn, ns, target) is not None:
                raise AlreadyExists(f"target snapshot {quote(target)}")
            if self._get(txn, ns, snapshot_key) is not None:
                raise AlreadyExists(f"snapshot {quote(snapshot_key)}")
            bparent = ""
            if parent:
                parent_record = self._get(txn, ns, parent)
                if parent_record is None:
                    raise NotFound(f"parent snapshot {parent} does not exist")
                bparent = parent_record["name"]
            if target and self._link_target(txn, ns, lease, target, parent, bparent, base):
                return None
            bkey = self._next_key(txn, ns, snapshot_key)
            with self._inflight_lock:
                self._inflight.add(bkey)
            held.append(bkey)
            backend_create = self.backend.view_sync if readonly else self.backend.prepare_sync
            try:
                mounts = backend_create(bkey, bparent, inherited_labels(base))
            except AlreadyExists as exc:  # a fresh backend key cannot exist
                raise ContainerdError(f"unexpected error from snapshotter: {exc}") from exc
            created.append(bkey)
            now = time.time_ns()
            ensure(txn, ns)
            self._lease_add(txn, ns, lease, snapshot_key)
            record = {"name": bkey, "parent": parent, "labels": base, "created_at": now, "updated_at": now}
            txn.put("objects", record_key(ns, self.name, snapshot_key), record)
            return mounts

        def create_sync() -> list[Mount] | None:
            try:
                return self.db.update_sync(create)
            except BaseException:
                for bkey in created:  # made by the backend, but the record did not commit
                    try:
                        self.backend.remove_sync(bkey)
                    except Exception as exc:
                        log.error("failed to clean up unreferenced snapshot", snapshotter=self.name, key=bkey,
                                  error=str(exc))
                raise
            finally:
                with self._inflight_lock:
                    self._inflight.difference_update(held)

        mounts = await asyncio.to_thread(create_sync)
        if mounts is None:
            raise AlreadyExists(f"target snapshot {quote(target)} from snapshotter")
        return ns, mounts

    def _link_target(
        self, txn: Txn, ns: str, lease: str | None, target: str, parent: str, bparent: str,
        base: Mapping[str, str],
    ) -> bool:
        """Link a committed backend snapshot labelled ``target`` on ``bparent`` into ``ns``
        as ``target``; False when the backend has none."""
        found = None
        for info in self.backend.walk_sync([f'labels."{LABEL_SNAPSHOT_REF}"']):
            if info.kind == Kind.COMMITTED and info.labels.get(LABEL_SNAPSHOT_REF) == target and info.parent == bparent:
                found = info
                break
        if found is None:
            return False
        ensure(txn, ns)
        self._lease_add(txn, ns, lease, target)
        record = {
            "name": found.name,
            "parent": parent,
            "labels": {**found.labels, **base},
            "created_at": found.created_at,
            "updated_at": found.updated_at,
        }
        txn.put("objects", record_key(ns, self.name, target), record)
        return True

    async def commit(self, name: str, snapshot_key: str, labels: Mapping[str, str] | None = None) -> None:
        """Commit active ``snapshot_key`` as ``name`` (labels replace, never inherit);
        publish ``/snapshot/commit``. The backend commits inside the same metadata
        transaction.

        Raises:
            AlreadyExists: ``name`` exists in this namespace.
            NotFound: ``snapshot_key`` (or the context's lease) does not exist.
            FailedPrecondition: ``snapshot_key`` is not active.
        """
        ns = namespaces.required()
        lease = leases_context.get()
        base = _validate_labels(labels)
        self._key(ns, name, "name")

        def fn(txn: Txn) -> None:
            if self._get(txn, ns, name) is not None:
                raise AlreadyExists(f"snapshot {quote(name)}")
            self._lease_add(txn, ns, lease, name)
            record = self._get(txn, ns, snapshot_key)
            if record is None:
                raise NotFound(f"snapshot {snapshot_key} does not exist")
            name_key = self._next_key(txn, ns, name)
            parent = record.get("parent", "")
            if parent and self._get(txn, ns, parent) is None:
                raise NotFound(f"parent snapshot {parent} does not exist")
            now = time.time_ns()
            txn.put("objects", record_key(ns, self.name, name),
                    {"name": name_key, "parent": parent, "labels": base, "created_at": now, "updated_at": now})
            txn.delete("objects", record_key(ns, self.name, snapshot_key))
            self._lease_remove(txn, ns, lease, snapshot_key)
            self.backend.commit_sync(name_key, record["name"], inherited_labels(base))

        await self.db.update(fn)
        self._publish(TOPIC_COMMIT, snapshot_pb2.SnapshotCommit(key=snapshot_key, name=name), ns)

    async def remove(self, snapshot_key: str) -> None:
        """Drop this namespace's record and schedule garbage collection; publish
        ``/snapshot/remove``.

        Raises:
            NotFound: no such snapshot.
            FailedPrecondition: another snapshot has it as parent.
        """
        ns = namespaces.required()
        lease = leases_context.get()

        def fn(txn: Txn) -> None:
            if not self.remove_in(txn, ns, lease, snapshot_key):
                raise NotFound(f"snapshot {snapshot_key} does not exist")

        await self.db.update(fn)
        self.removed(ns, snapshot_key)

    def remove_in(self, txn: Txn, ns: str, lease: str | None, snapshot_key: str) -> bool:
        """:meth:`remove`'s record delete inside the caller's write transaction (with other
        writes that must commit with it); False when there is no such snapshot. Raises
        :class:`FailedPrecondition` (a child). Call :meth:`removed` after the commit."""
        if self._get(txn, ns, snapshot_key) is None:
            return False
        if next(self._children(txn, ns, snapshot_key), None) is not None:
            raise FailedPrecondition("cannot remove snapshot with child")
        txn.delete("objects", record_key(ns, self.name, snapshot_key))
        self._lease_remove(txn, ns, lease, snapshot_key)
        return True

    def removed(self, ns: str, snapshot_key: str) -> None:
        """After a committed :meth:`remove_in`: ask for a collection, publish ``/snapshot/remove``."""
        if self.gc is not None:
            self.gc.schedule(f"snapshotter/{self.name}")
        self._publish(TOPIC_REMOVE, snapshot_pb2.SnapshotRemove(key=snapshot_key), ns)

    async def update(self, info: Info, paths: Sequence[str] = ()) -> Info:
        """Change labels of ``info.name`` by field paths (``labels``, ``labels.<key>``; none
        = replace all); the backend gets the inherited ones in the same transaction.

        Raises:
            InvalidArgument: no name, another field path, or bad labels.
            NotFound: no such snapshot.
        """
        ns = namespaces.required()
        if not info.name:
            raise InvalidArgument("snapshot name is required for update")
        paths = list(paths)

        def fn(txn: Txn) -> Info:
            record = self._get(txn, ns, info.name)
            if record is None:
                raise NotFound(f"snapshot {info.name} does not exist")
            new_labels = labels_mod.apply_field_paths(
                record.get("labels") or {}, info.labels, paths, f"snapshot {quote(info.name)}", "info.Labels"
            )
            record["labels"] = new_labels
            record["updated_at"] = time.time_ns()
            txn.put("objects", record_key(ns, self.name, info.name), record)
            backend_info = self.backend.update_sync(Info(name=record["name"], labels=inherited_labels(new_labels)), paths)
            return _overlay_info(backend_info, info.name, record)

        return await self.db.update(fn)

    async def cleanup(self) -> None:
        """Let the backend free disk space no snapshot uses (orphaned directories)."""
        await asyncio.to_thread(self.backend.cleanup_sync)

    async def close(self) -> None:
        """Nothing to release: the backend belongs to its own plugin."""

    # ------------------------------------------------------------------ garbage collection

    def _undo_interrupted_commits(self, txn: Txn) -> None:
        """Repair what a crash between the backend's commit and this store's transaction
        (:meth:`commit`) leaves: a record naming an active backend key that the backend
        has committed under another name, which no record names. The record is the truth
        (the caller saw the commit fail), so the backend's commit is undone; the data was
        never touched by the commit."""
        committed_from = getattr(self.backend, "committed_from_sync", None)
        moved = committed_from() if committed_from is not None else {}
        if not moved:
            return
        records = []
        for ns_raw, _ in txn.scan("namespaces", b""):
            prefix = key_prefix(ns_raw.decode(), SNAPSHOTS, self.name)
            records.extend(record for _, record in txn.scan("objects", prefix))
        named = {record["name"] for record in records}
        for record in records:
            name = moved.get(record["name"])
            if name is None or name in named:
                continue
            try:
                self.backend.stat_sync(record["name"])
                continue  # the active key exists: nothing was lost
            except NotFound:
                pass
            try:
                self.backend.uncommit_sync(name, record["name"], inherited_labels(record.get("labels") or {}))
                log.warning("undid a snapshot commit interrupted by a crash", snapshotter=self.name,
                            key=record["name"], name=name)
            except ContainerdError as exc:
                log.warning("failed to undo an interrupted snapshot commit", snapshotter=self.name,
                            key=record["name"], name=name, error=str(exc))

    def sweep(self, txn: Txn, result: Any) -> None:
        """The garbage collector's sweeper for this snapshotter (blocking; runs inside the
        collection's write transaction on its worker thread, after unreachable records were
        deleted). Removes every backend snapshot no record of any namespace names — except
        snapshots being created and the parents of kept ones — children before parents; the
        directories are renamed aside now and deleted, with the backend's cleanup, in
        ``result.after_commit`` (after the transaction, so no write waits on them). Counts removals in
        ``result.backend_removed[<snapshotter>]``."""
        self._undo_interrupted_commits(txn)
        keep: set[str] = set()
        for ns_raw, _ in txn.scan("namespaces", b""):
            prefix = key_prefix(ns_raw.decode(), SNAPSHOTS, self.name)
            keep.update(record["name"] for _, record in txn.scan("objects", prefix))
        with self._inflight_lock:
            keep |= self._inflight
        parents = {info.name: info.parent for info in self.backend.walk_sync()}
        stack = list(keep)
        while stack:
            parent = parents.get(stack.pop(), "")
            if parent and parent not in keep:
                keep.add(parent)
                stack.append(parent)

        def depth(name: str) -> int:
            n = 0
            while name := parents.get(name, ""):
                n += 1
            return n

        removed, trash = 0, []
        for name in sorted((n for n in parents if n not in keep), key=depth, reverse=True):
            try:
                self.backend.remove_sync(name, trash=trash)
                removed += 1
            except NotFound:
                continue
            except Exception as exc:  # logged; the next collection retries
                log.warning("failed to remove snapshot", snapshotter=self.name, key=name, error=str(exc))

        def after_commit() -> None:
            self.backend.empty_trash_sync(trash)
            try:
                self.backend.cleanup_sync()
            except Exception as exc:
                log.warning("snapshotter cleanup failed", snapshotter=self.name, error=str(exc))

        result.after_commit.append(after_commit)
        backend_removed = getattr(result, "backend_removed", None)
        if isinstance(backend_removed, dict):
            backend_removed[self.name] = backend_removed.get(self.name, 0) + removed
