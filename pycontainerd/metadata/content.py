"""The namespaced content store (containerd's ``metadata/content.go``).

Blobs are stored once, underneath, in the :class:`~pycontainerd.content.local.LocalStore`;
a namespace *sees* a blob only through its own reference record::

    objects  <ns>\\0content\\0blob\\0<digest>    -> {"labels", "size", "created_at", "updated_at"}
             <ns>\\0content\\0ingests\\0<ref>    -> {"ref": <backend ref>, "expected"?, "expire_at"?}

Info, Read, List, Update and Delete look only at the current namespace's records
(:func:`pycontainerd.namespaces.required`), so a blob written in namespace A is
``NOT_FOUND`` in namespace B even by digest. Delete removes the namespace's record only
and asks the garbage collector for a collection; files are removed by
:meth:`ContentStore.sweep`, the content store's sweeper, which the collector runs inside
its one write transaction: it deletes every blob and ingest that :func:`references` (all
namespaces) no longer names. A commit renames the blob into place inside its own metadata
write transaction, so a collection never sees a committed blob without its reference; an
ingest held by a live writer is never swept.

Writes go through :meth:`ContentStore.writer`. The backend ingest is named
``<ns>/1/<ref>`` (containerd's ``createKey``), so the same ref in two namespaces are two
writes. Sharing policy "shared" (containerd's default): when the caller gives the
expected digest of a blob that exists underneath (written in another namespace) and the
size matches or is not given, no data is transferred — the writer reports the blob's size
as its offset and commit only adds this namespace's reference. Writing data to such a
writer first copies the blob into a real ingest, as containerd does.

Leases: with a lease in the context (:mod:`pycontainerd.leases_context`, gRPC header
``containerd-lease``), opening a writer records ``<ns>\\0leases\\0<lease>\\0ingests\\0<ref>``
and commit swaps it for ``<ns>\\0leases\\0<lease>\\0content\\0<digest>`` in the same
transaction; a lease that does not exist is ``NOT_FOUND``. Without a lease an ingest gets an
``expire_at`` 24 hours ahead, after which garbage collection may abort it.

Events: ``/content/delete`` (``containerd.events.ContentDelete``) after a delete commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .. import digest as digest_mod
from .. import filters as filters_mod
from .. import labels as labels_mod
from .. import leases_context, namespaces
from ..api.events import content_pb2
from ..content import CHUNK, Info, Status
from ..content.ingest import Writer, run_to_completion
from ..content.local import LocalStore, ReaderAt, adapt_info, adapt_status
from ..errdefs import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    OutOfRange,
    quote,
)
from ..events.exchange import Exchange
from ..log import get_logger
from .db import MetadataDB, Txn
from .keys import BLOB, CONTENT, INGESTS, blob_key, ingest_key, key_prefix, lease_resource_key
from .leases import require_lease
from .namespaces import ensure

log = get_logger("content")

TOPIC_DELETE = "/content/delete"
INGEST_EXPIRY_NS = 24 * 3600 * 1_000_000_000
"""How long an ingest without a lease is kept (containerd: 24 hours)."""

OBJECTS = "objects"


def add_content_lease(txn: Txn, ns: str, lease: str | None, digest: str) -> None:
    """Record that ``lease`` holds blob ``digest`` (nothing without a lease).
    Raises :class:`NotFound` when the lease record ``<ns>\\0leases\\0<lease>`` does not
    exist."""
    if lease:
        require_lease(txn, ns, lease)
        txn.put(OBJECTS, lease_resource_key(ns, lease, CONTENT, digest), {})


def remove_content_lease(txn: Txn, ns: str, lease: str | None, digest: str) -> None:
    if lease:
        txn.delete(OBJECTS, lease_resource_key(ns, lease, CONTENT, digest))


def add_ingest_lease(txn: Txn, ns: str, lease: str | None, ref: str) -> bool:
    """Record that ``lease`` holds ingest ``ref``; False when there is no lease.
    Raises :class:`NotFound` when the lease does not exist."""
    if not lease:
        return False
    require_lease(txn, ns, lease)
    txn.put(OBJECTS, lease_resource_key(ns, lease, INGESTS, ref), {})
    return True


def remove_ingest_lease(txn: Txn, ns: str, lease: str | None, ref: str) -> None:
    if lease:
        txn.delete(OBJECTS, lease_resource_key(ns, lease, INGESTS, ref))


def _info(digest: str, record: Mapping) -> Info:
    return Info(
        digest=digest,
        size=int(record.get("size", 0)),
        created_at=int(record.get("created_at", 0)),
        updated_at=int(record.get("updated_at", 0)),
        labels=dict(record.get("labels") or {}),
    )


def _validate_labels(labels: Mapping[str, str] | None) -> dict[str, str]:
    try:
        return labels_mod.validate_all({k: v for k, v in (labels or {}).items() if v})
    except InvalidArgument as exc:
        raise InvalidArgument(f"info.Labels: {exc.context}") from exc


@dataclass
class ContentReferences:
    """What garbage collection must keep, across every namespace.

    Attributes:
        digests: blobs referenced by some namespace, plus the expected digests of shared
            ingests (their blob may be referenced only by another namespace).
        ingests: backend refs (``<ns>/1/<ref>``) of every namespace's ingests; any other
            directory under ``ingest/`` is garbage.
        expire_at: backend ref -> expiry (ns since the epoch) of ingests held by no lease.
    """

    digests: set[str] = field(default_factory=set)
    ingests: set[str] = field(default_factory=set)
    expire_at: dict[str, int] = field(default_factory=dict)


def references(txn: Txn) -> ContentReferences:
    """Collect :class:`ContentReferences` in one read transaction (the GC hook)."""
    out = ContentReferences()
    for raw_ns, _ in txn.scan("namespaces", b""):
        ns = raw_ns.decode()
        blobs = key_prefix(ns, CONTENT, BLOB)
        for k, _ in txn.scan(OBJECTS, blobs):
            out.digests.add(k[len(blobs) :].decode())
        ingests = key_prefix(ns, CONTENT, INGESTS)
        for _, rec in txn.scan(OBJECTS, ingests):
            if rec.get("expected"):
                out.digests.add(rec["expected"])
            if rec.get("ref"):
                out.ingests.add(rec["ref"])
                if rec.get("expire_at"):
                    out.expire_at[rec["ref"]] = int(rec["expire_at"])
    return out


class GCScheduler(Protocol):
    """What the store needs of the garbage collector (:class:`pycontainerd.gc_scheduler.Scheduler`)."""

    def schedule(self, *dirty: str) -> None: ...


class ContentStore:
    """The content store as one namespace sees it (the namespace comes from the context).

    Args:
        db: the metadata database.
        local: the blob store underneath.
        exchange: where ``/content/delete`` is published (None: no events).
        gc: the garbage collection scheduler, asked for a collection after each delete
            (None: deletes only drop references). Register :meth:`sweep` on it so that
            collections remove the files.
        shared: containerd's ``content_sharing_policy``: True ("shared") lets a writer that
            names an expected digest present underneath commit without sending the data;
            False ("isolated") makes every namespace upload the bytes itself.
    """

    def __init__(
        self,
        db: MetadataDB,
        local: LocalStore,
        exchange: Exchange | None = None,
        gc: GCScheduler | None = None,
        shared: bool = True,
    ) -> None:
        self.db = db
        self.local = local
        self.exchange = exchange
        self.gc = gc
        self.shared = shared

    async def references(self) -> ContentReferences:
        """:func:`references` in a read transaction."""
        return await asyncio.to_thread(self.db.view, references)

    def sweep(self, txn: Txn, result: Any) -> None:
        """The content sweeper for :mod:`pycontainerd.metadata.gc`: called inside the
        collection's write transaction, after it removed unreachable references; deletes
        every blob file no namespace references and every ingest directory no namespace
        records (unless a writer holds it now). Counts removals in
        ``result.backend_removed["content"]``."""
        refs = references(txn)
        removed = 0
        for info in self.local.walk_sync():
            if info.digest not in refs.digests:
                with contextlib.suppress(NotFound):
                    self.local.delete_sync(info.digest)
                    removed += 1
                    log.debug("removed content", digest=info.digest)
        for bref in self.local.walk_status_refs_sync():
            if bref not in refs.ingests:
                with contextlib.suppress(NotFound):
                    if self.local.collect_ingest_sync(bref):  # else when its writer closes
                        removed += 1
                        log.debug("cleanup aborting ingest", ref=bref)
        backend_removed = getattr(result, "backend_removed", None)
        if isinstance(backend_removed, dict):
            backend_removed["content"] = backend_removed.get("content", 0) + removed

    # --- blobs ----------------------------------------------------------------------------

    async def info(self, digest: str) -> Info:
        """The blob as this namespace sees it (its labels and times).

        Raises:
            InvalidArgument: bad digest.
            NotFound: the namespace holds no reference to the blob
                (``content digest <digest>``).
        """
        digest_mod.validate(digest)
        ns = namespaces.required()
        record = self.db.view(lambda txn: txn.get(OBJECTS, blob_key(ns, digest)))
        if record is None:
            raise NotFound(f"content digest {digest}")
        return _info(digest, record)

    async def exists(self, digest: str) -> bool:
        """True if the blob is visible in this namespace."""
        try:
            await self.info(digest)
        except NotFound:
            return False
        return True

    async def hold(self, digest: str) -> bool:
        """True if the blob is visible in this namespace — and then the current lease holds it,
        in the same transaction, so no collection can take it from a pull that skips fetching
        it (what opening a writer for an existing blob does, as containerd's store)."""
        digest_mod.validate(digest)
        ns = namespaces.required()
        lease = leases_context.get()

        def fn(txn: Txn) -> bool:
            if txn.get(OBJECTS, blob_key(ns, digest)) is None:
                return False
            add_content_lease(txn, ns, lease, digest)
            return True

        if not lease:
            return self.db.view(fn)
        return await self.db.update(fn)

    async def update(self, digest: str, labels: Mapping[str, str], paths: Iterable[str] = ()) -> Info:
        """Change a blob's labels in this namespace; ``updated_at`` becomes now.

        ``paths`` are field-mask paths: ``labels`` replaces all labels, ``labels.<key>``
        sets (or, with an empty or missing value, removes) one label; no paths replaces
        all labels.

        Raises:
            InvalidArgument: bad digest, another path (``cannot update "<path>" field on
                content info "<digest>"``), or labels too large.
            NotFound: the blob is not in this namespace.
        """
        digest_mod.validate(digest)
        ns = namespaces.required()
        paths = list(paths)

        def txn_fn(txn: Txn) -> Info:
            record = txn.get(OBJECTS, blob_key(ns, digest))
            if record is None:
                raise NotFound(f"content digest {digest}")
            record["labels"] = labels_mod.apply_field_paths(
                record.get("labels") or {}, dict(labels), paths, f"content info {quote(digest)}"
            )
            record["updated_at"] = time.time_ns()
            txn.put(OBJECTS, blob_key(ns, digest), record)
            return _info(digest, record)

        return await self.db.update(txn_fn)

    async def list(self, filters: Iterable[str] = ()) -> list[Info]:
        """The namespace's blobs in digest order, those matching any of ``filters``
        (fields ``digest`` and ``labels.<key>``; ``size`` never matches, as in
        containerd). Raises :class:`InvalidArgument` for a bad filter."""
        match = filters_mod.parse_all(filters)
        ns = namespaces.required()
        prefix = key_prefix(ns, CONTENT, BLOB)

        def view(txn: Txn) -> list[Info]:
            out = []
            for k, record in txn.scan(OBJECTS, prefix):
                digest = k[len(prefix) :].decode()
                if not digest_mod.is_valid(digest):
                    continue
                info = _info(digest, record)
                if match.match(adapt_info(info)):
                    out.append(info)
            return out

        return await asyncio.to_thread(self.db.view, view)

    async def delete(self, digest: str) -> None:
        """Remove this namespace's reference to a blob (the file stays until garbage
        collection finds no namespace referencing it), and the current lease's hold on
        it. Publishes ``/content/delete``.

        Raises:
            InvalidArgument: bad digest.
            NotFound: the blob is not in this namespace.
        """
        digest_mod.validate(digest)
        ns = namespaces.required()
        lease = leases_context.get()

        def txn_fn(txn: Txn) -> None:
            if not txn.delete(OBJECTS, blob_key(ns, digest)):
                raise NotFound(f"content digest {digest}")
            remove_content_lease(txn, ns, lease, digest)

        await self.db.update(txn_fn)
        if self.gc is not None:
            self.gc.schedule("content")
        if self.exchange is not None:
            self.exchange.publish(TOPIC_DELETE, content_pb2.ContentDelete(digest=digest), namespace=ns)

    async def reader_at(self, digest: str) -> ReaderAt:
        """Open a blob of this namespace for reading.

        Raises:
            InvalidArgument: bad digest.
            NotFound: the blob is not in this namespace (or gone underneath).
        """
        await self.info(digest)
        return await self.local.reader_at(digest)

    async def read(self, digest: str, offset: int = 0, size: int = -1) -> bytes:
        """Bytes ``[offset, offset+size)`` of a blob (to the end when ``size`` < 0).

        Raises InvalidArgument, NotFound, and :class:`OutOfRange` for an offset past the
        end.
        """
        async with await self.reader_at(digest) as ra:
            if offset > ra.size:
                raise OutOfRange(f"read past object length {ra.size} bytes")
            if size < 0 or offset + size > ra.size:
                size = ra.size - offset
            return await ra.read(offset, size)

    # --- ingests --------------------------------------------------------------------------

    def _backend_ref(self, txn: Txn, ns: str, ref: str) -> str | None:
        record = txn.get(OBJECTS, ingest_key(ns, ref))
        return (record or {}).get("ref") or None

    async def status(self, ref: str) -> Status:
        """The write ``ref`` in progress in this namespace.

        Raises:
            NotFound: no such ingest here (``reference <ref>``), or its data is gone.
        """
        ns = namespaces.required()
        bref = self.db.view(lambda txn: self._backend_ref(txn, ns, ref))
        if bref is None:
            raise NotFound(f"reference {ref}")
        status = await self.local.status(bref)
        status.ref = ref
        return status

    async def list_statuses(self, filters: Iterable[str] = ()) -> list[Status]:
        """The namespace's writes in progress, by ref, those matching ``filters`` (field
        ``ref``). Raises :class:`InvalidArgument` for a bad filter."""
        match = filters_mod.parse_all(filters)
        ns = namespaces.required()
        prefix = key_prefix(ns, CONTENT, INGESTS)

        def collect() -> list[Status]:
            rows = self.db.view(lambda txn: [(k, v) for k, v in txn.scan(OBJECTS, prefix)])
            out = []
            for k, record in rows:
                bref = record.get("ref")
                if not bref:
                    continue
                try:
                    status = self.local.status_sync(bref)
                except NotFound:
                    continue
                status.ref = k[len(prefix) :].decode()
                if match.match(adapt_status(status)):
                    out.append(status)
            return out

        return await asyncio.to_thread(collect)

    async def abort(self, ref: str) -> None:
        """Cancel the write ``ref`` in this namespace and delete its data.

        Raises:
            NotFound: no such ingest here (``reference <ref>``).
        """
        ns = namespaces.required()
        lease = leases_context.get()

        def txn_fn(txn: Txn) -> None:
            record = txn.get(OBJECTS, ingest_key(ns, ref))
            if record is None or not record.get("ref"):
                raise NotFound(f"reference {ref}")
            txn.delete(OBJECTS, ingest_key(ns, ref))
            remove_ingest_lease(txn, ns, lease, ref)
            if not record.get("expected"):  # a shared ingest has no data underneath
                with contextlib.suppress(NotFound):
                    self.local.abort_sync(record["ref"])

        await self.db.update(txn_fn)

    async def writer(self, ref: str, total: int = 0, expected: str = "") -> NamespacedWriter:
        """Begin or resume the write ``ref`` in this namespace.

        Args:
            ref: the client's name for the write (non-empty).
            total: expected size in bytes, 0 if unknown.
            expected: expected digest, ``""`` if unknown.

        Returns:
            a :class:`NamespacedWriter`; close or commit it.

        Raises:
            InvalidArgument: empty ref, bad ``expected``.
            AlreadyExists: ``expected`` is already in this namespace (``content <digest>``);
                the current lease now holds it. Clients treat this as success.
            Unavailable: another writer holds ``ref`` (``ref ... locked``).
            NotFound: the context names a lease that does not exist.
        """
        if not ref:
            raise InvalidArgument("ref must not be empty")
        if expected:
            digest_mod.validate(expected)
        ns = namespaces.required()
        lease = leases_context.get()
        if expected and self.db.view(lambda txn: txn.get(OBJECTS, blob_key(ns, expected))) is not None:
            if lease:
                await self.db.update(lambda txn: add_content_lease(txn, ns, lease, expected))
            raise AlreadyExists(f"content {expected}")

        shared_size: int | None = None
        if self.shared and expected:
            try:
                underneath = self.local.info_sync(expected)
            except NotFound:
                pass
            else:
                if total in (0, underneath.size):
                    shared_size = underneath.size

        def txn_fn(txn: Txn) -> tuple[bool, str, int | None]:
            if expected and txn.get(OBJECTS, blob_key(ns, expected)) is not None:
                add_content_lease(txn, ns, lease, expected)
                return True, "", None  # committed meanwhile
            # checked again here: garbage collection cannot run inside this transaction
            shared = shared_size if shared_size is not None and self.local.exists(expected) else None
            ensure(txn, ns)
            record = txn.get(OBJECTS, ingest_key(ns, ref)) or {}
            record["ref"] = record.get("ref") or f"{ns}/1/{ref}"
            if not add_ingest_lease(txn, ns, lease, ref):
                record["expire_at"] = time.time_ns() + INGEST_EXPIRY_NS
            if shared is not None:
                record["expected"] = expected
            txn.put(OBJECTS, ingest_key(ns, ref), record)
            return False, record["ref"], shared

        exists, bref, shared_size = await self.db.update(txn_fn)
        if exists:
            raise AlreadyExists(f"content {expected}")
        if shared_size is not None:
            return NamespacedWriter(self, ns, ref, bref, None, shared_size, expected)
        # The ingest record exists from here on, so garbage collection keeps the directory
        # the backend writer creates; a lock conflict means another writer made the record.
        backend = await self.local.writer(bref, total)
        return NamespacedWriter(self, ns, ref, bref, backend, total, "")


class NamespacedWriter:
    """A write into one namespace; get it from :meth:`ContentStore.writer`.

    Not safe for concurrent use by several tasks. Holds the backend ref's lock (if it has a
    backend writer) until :meth:`commit` or :meth:`close`.
    """

    def __init__(
        self,
        store: ContentStore,
        ns: str,
        ref: str,
        bref: str,
        backend: Writer | None,
        size: int,
        shared_digest: str,
    ) -> None:
        self._store = store
        self.namespace = ns
        self.ref = ref
        self._bref = bref
        self._w = backend
        self._size = size  # total given; for a shared write, the blob's size
        self._shared_digest = shared_digest
        self._started = time.time_ns()
        self._done = False

    def status(self) -> Status:
        """Offset, total and times of this write; a shared write reports the whole blob
        as written, with ``expected`` set to its digest."""
        if self._w is not None:
            status = self._w.status()
        else:
            status = Status(self.ref, self._size, self._size, self._shared_digest, self._started, self._started)
        status.ref = self.ref
        return status

    def digest(self) -> str:
        """Digest of the bytes written so far (for a shared write, the blob's)."""
        return self._w.digest() if self._w is not None else self._shared_digest

    def _require_open(self, what: str) -> None:
        if self._done:
            raise FailedPrecondition(f"cannot {what} on closed writer")

    async def _create_and_copy(self, copy_size: int) -> Writer:
        """Turn a shared write into a real ingest holding the blob's first ``copy_size``
        bytes (containerd's ``createAndCopy``)."""
        store = self._store
        w = await store.local.writer(self._bref, copy_size)
        try:
            if w.offset:
                await w.truncate(0)
            if copy_size > 0:
                async with await store.local.reader_at(self._shared_digest) as ra:
                    offset = 0
                    while offset < copy_size:
                        chunk = await ra.read(offset, min(CHUNK, copy_size - offset))
                        if not chunk:
                            raise FailedPrecondition(f"blob {self._shared_digest} shorter than {copy_size} bytes")
                        await w.write(chunk)
                        offset += len(chunk)
        except BaseException:
            await w.close()
            raise
        self._w = w
        return w

    async def write(self, data: bytes, offset: int | None = None) -> int:
        """Append ``data`` (see :meth:`pycontainerd.content.ingest.Writer.write`).

        Raises:
            OutOfRange: ``offset`` given and not the current offset.
            FailedPrecondition: the writer is closed.
        """
        self._require_open("write")
        if offset is not None and offset != self.status().offset:
            raise OutOfRange(f"write @{offset} must occur at current offset {self.status().offset}")
        w = self._w
        if w is None:
            if not data:
                return 0
            w = await self._create_and_copy(self._size)
        return await w.write(data)

    async def truncate(self, size: int = 0) -> None:
        """Discard what was written (only 0 is supported)."""
        self._require_open("truncate")
        if self._w is not None:
            await self._w.truncate(size)
            return
        if size != 0:
            raise InvalidArgument(f"truncate to {size} bytes: only 0 is supported")
        await self._create_and_copy(0)

    async def commit(self, size: int = 0, expected: str = "", labels: Mapping[str, str] | None = None) -> str:
        """Verify the write, publish the blob and reference it in this namespace with
        ``labels``; returns the digest. The writer is closed afterwards.

        Raises:
            FailedPrecondition: size or digest mismatch (``"<ref>" failed size validation:
                <actual> != <size>``, ``unexpected commit digest <actual>, expected
                <expected>``); nothing is committed and the ingest stays (resumable).
            AlreadyExists: the namespace already referenced the blob; the ingest is gone and
                the lease (if any) holds the blob — callers treat this as success.
            InvalidArgument: bad ``expected`` or labels.
            NotFound: the context's lease does not exist.
        """
        self._require_open("commit")
        self._done = True
        if expected:
            try:
                digest_mod.validate(expected)
            except InvalidArgument:
                await self.close()
                raise
        store = self._store
        ns, ref = self.namespace, self.ref
        lease = leases_context.get()
        try:
            clean_labels = _validate_labels(labels)
        except InvalidArgument:
            await self.close()
            raise
        backend = self._w
        if backend is not None and size and size != backend.offset:
            written = backend.offset
            await backend.close()
            raise FailedPrecondition(f"{quote(ref)} failed size validation: {written} != {size}")
        if backend is None:
            if size and size != self._size:
                raise FailedPrecondition(f"{quote(ref)} failed size validation: {self._size} != {size}")
            if expected and expected != self._shared_digest:
                raise FailedPrecondition(f"{quote(ref)} unexpected digest")

        def txn_fn(txn: Txn) -> tuple[bool, str]:
            if lease:  # before the rename: a missing lease must leave the ingest untouched
                require_lease(txn, ns, lease)
            if backend is None:
                blob_size, actual = self._size, self._shared_digest
            else:
                blob_size = backend.offset
                try:
                    # inside the transaction: no collection sees the blob unreferenced
                    actual = backend.commit_sync(blob_size, expected)
                except AlreadyExists:
                    actual = backend.digest()
            existed = txn.get(OBJECTS, blob_key(ns, actual)) is not None
            if not existed:
                ensure(txn, ns)
                now = time.time_ns()
                record = {"labels": clean_labels, "size": blob_size, "created_at": now, "updated_at": now}
                txn.put(OBJECTS, blob_key(ns, actual), record)
            txn.delete(OBJECTS, ingest_key(ns, ref))
            remove_ingest_lease(txn, ns, lease, ref)
            add_content_lease(txn, ns, lease, actual)
            return existed, actual

        try:
            existed, actual = await run_to_completion(store.db.update_sync, txn_fn)
        finally:
            if backend is not None and not backend.closed:
                await backend.close()  # the lease check failed before the commit
        if existed:
            raise AlreadyExists(f"content {actual}")
        return actual

    async def close(self) -> None:
        """Stop writing, keeping the ingest for a later resume (unless garbage collection
        took it meanwhile: see :meth:`LocalStore.collect_ingest_sync`); idempotent."""
        self._done = True
        if self._w is not None:
            await self._w.close()


__all__ = [
    "ContentReferences",
    "ContentStore",
    "NamespacedWriter",
    "TOPIC_DELETE",
    "add_content_lease",
    "add_ingest_lease",
    "blob_key",
    "ingest_key",
    "references",
    "remove_content_lease",
    "remove_ingest_lease",
]
