"""The LMDB metadata database: one environment under ``<root>/io.containerd.metadata.v1.lmdb``.

Schema (version 1). Three named databases; keys are byte strings whose parts are joined by
NUL (``\\0``), which no identifier, name or digest may contain, so a prefix scan of
``<ns>\\0<kind>\\0`` sees exactly one namespace's objects of one kind::

    meta          b"schema"                     -> b"1"                 schema version
                  snapshots.seq\\0<ns>\\0<snapshotter> -> n   last backend key number handed out
    namespaces    <ns>                          -> JSON {"labels": {...}, "created_at": ns}
    objects       <ns>\\0image\\0<name>           -> JSON image record          (images)
                  <ns>\\0content\\0blob\\0<digest>  -> JSON {labels, size, created_at, updated_at}
                                                  the namespace's reference to a blob (content refs)
                  <ns>\\0content\\0ingests\\0<ref> -> JSON {ref: <backend ingest ref "<ns>/1/<ref>">,
                                                  expected?: <digest> (shared write, no data),
                                                  expire_at?: ns (no lease)}
                  <ns>\\0containers\\0<id>       -> JSON container record
                  <ns>\\0snapshots\\0<snapshotter>\\0<key> -> JSON {name: <backend key "<ns>/<n>/<key>">,
                                                  parent: <key in this namespace or "">, labels,
                                                  created_at, updated_at}   (snapshot refs)
                  <ns>\\0leases\\0<id>           -> JSON lease record (+ its resources)
                  <ns>\\0leases\\0<id>\\0content\\0<digest> -> {}   the lease holds a blob
                  <ns>\\0leases\\0<id>\\0ingests\\0<ref>    -> {}   the lease holds an ingest
                  <ns>\\0leases\\0<id>\\0snapshots\\0<snapshotter>\\0<key> -> {}  the lease holds a snapshot
                  <ns>\\0sandboxes\\0<id>        -> JSON sandbox record

The kind names are containerd's bucket names (``core/metadata/buckets.go``). An open with a
newer schema than this code knows is refused; an older one is upgraded by the ordered
:data:`MIGRATIONS` inside one write transaction.

Durability. Every mutation is one write transaction (:meth:`MetadataDB.update`), committed
with LMDB's default ``sync=True``: the commit returns only after the data and meta pages
are ``fsync``-ed. So:

* a commit that returned survives ``kill -9`` of the daemon *and* power loss;
* a transaction in flight when the daemon dies is rolled back entirely (LMDB's
  copy-on-write B-tree never exposes a half-written transaction);
* readers never block writers and always see a committed snapshot.

Write transactions run in a worker thread (:func:`asyncio.to_thread`) because the commit
``fsync`` blocks; reads are short and run on the caller's thread.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..errdefs import FailedPrecondition, InvalidArgument, ResourceExhausted, quote
from ..fsutil import cloexec_fds_under

if TYPE_CHECKING:  # lmdb is imported by the database that opens it: record types import this module
    import lmdb

SCHEMA_VERSION = 1
SEP = b"\0"
DEFAULT_MAP_SIZE = 8 << 30  # bytes of address space; the file grows only as used
MAX_KEY_SIZE = 511
"""LMDB's key size limit (``MDB_MAXKEYSIZE``, ``Environment.max_key_size()``): longer or
empty keys make every call fail with ``MDB_BAD_VALSIZE``."""

T = TypeVar("T")

MIGRATIONS: list[tuple[int, Callable[[Txn], None]]] = []
"""``(target version, migrate(txn))`` in order; empty while the schema is at version 1."""


def key(*parts: str | bytes) -> bytes:
    """Join key parts with NUL. Raises :class:`InvalidArgument` if a part contains NUL."""
    out = []
    for part in parts:
        raw = part.encode() if isinstance(part, str) else part
        if SEP in raw:
            raise InvalidArgument(f"name {quote(part)} contains a NUL byte")
        out.append(raw)
    return SEP.join(out)


def split(raw: bytes) -> list[str]:
    """The parts of a key, decoded."""
    return [p.decode() for p in raw.split(SEP)]


class Txn:
    """A transaction over the three databases; JSON values in, JSON values out."""

    def __init__(self, db: MetadataDB, txn: lmdb.Transaction) -> None:
        self._db = db
        self.raw = txn

    def get(self, dbname: str, k: bytes) -> Any | None:
        value = self.get_bytes(dbname, k)
        return None if value is None else json.loads(value)

    def get_bytes(self, dbname: str, k: bytes) -> bytes | None:
        """The stored JSON as it is (for a store that memoizes what it decodes from it)."""
        if not k or len(k) > MAX_KEY_SIZE:  # LMDB refuses such a key; no record has one
            return None
        return self.raw.get(k, db=self._db.dbs[dbname])

    def put(self, dbname: str, k: bytes, value: Any, overwrite: bool = True) -> bool:
        """Store ``value``; with ``overwrite=False`` return False if the key exists."""
        if not k or len(k) > MAX_KEY_SIZE:
            raise InvalidArgument(f"name {quote(k.decode(errors='replace')[:100])}: empty or longer than "
                                  f"{MAX_KEY_SIZE} bytes with its namespace")
        data = json.dumps(value, separators=(",", ":"), sort_keys=True).encode()
        return self.raw.put(k, data, db=self._db.dbs[dbname], overwrite=overwrite)

    def delete(self, dbname: str, k: bytes) -> bool:
        if not k or len(k) > MAX_KEY_SIZE:
            return False
        return self.raw.delete(k, db=self._db.dbs[dbname])

    def scan(self, dbname: str, prefix: bytes) -> Iterator[tuple[bytes, Any]]:
        """Every ``(key, value)`` whose key starts with ``prefix``, in key order."""
        for k, v in self.scan_bytes(dbname, prefix):
            yield k, json.loads(v)

    def scan_bytes(self, dbname: str, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """:meth:`scan` with the stored JSON as it is."""
        with self.raw.cursor(db=self._db.dbs[dbname]) as cur:
            if not cur.set_range(prefix):
                return
            for k, v in cur:
                if not k.startswith(prefix):
                    return
                yield k, v

    def first_key(self, dbname: str, prefix: bytes, start: bytes | None = None) -> bytes | None:
        """The smallest key starting with ``prefix`` (and not below ``start``), or None."""
        with self.raw.cursor(db=self._db.dbs[dbname]) as cur:
            if cur.set_range(start or prefix) and cur.key().startswith(prefix):
                return cur.key()
        return None

    def delete_prefix(self, dbname: str, prefix: bytes) -> int:
        """Delete every key under ``prefix``; returns how many."""
        keys = [k for k, _ in self.scan(dbname, prefix)]
        for k in keys:
            self.delete(dbname, k)
        return len(keys)


class MetadataDB:
    """The LMDB environment and its schema.

    Args:
        path: directory of the environment (created, mode 0700).
        map_size: bytes of address space LMDB may use (the file grows as needed up to this).

    Raises:
        FailedPrecondition: the database has a schema newer than this code.
    """

    def __init__(self, path: Path, map_size: int = DEFAULT_MAP_SIZE) -> None:
        import lmdb

        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.env = lmdb.open(
            str(self.path),
            map_size=map_size,
            max_dbs=8,
            subdir=True,
            sync=True,
            metasync=True,
            max_readers=512,
        )
        self.generation = 0
        """Bumped after every committed write (:meth:`update_sync`): a reader that reads
        it before its read transaction knows its data holds every write bumped so far."""
        self._generation_lock = threading.Lock()
        cloexec_fds_under(self.path)  # LMDB leaves its data file inheritable
        self.dbs = {name: self.env.open_db(name.encode()) for name in ("meta", "namespaces", "objects")}
        self._migrate()

    def _migrate(self) -> None:
        with self.env.begin(write=True) as raw:
            txn = Txn(self, raw)
            current = raw.get(b"schema", db=self.dbs["meta"])
            version = int(current) if current else 0
            if version > SCHEMA_VERSION:
                raise FailedPrecondition(
                    f"metadata schema version {version} at {self.path} is newer than this "
                    f"pycontainerd understands ({SCHEMA_VERSION})"
                )
            if version == 0:
                raw.put(b"schema", str(SCHEMA_VERSION).encode(), db=self.dbs["meta"])
                return
            for target, migrate in MIGRATIONS:
                if target > version:
                    migrate(txn)
                    version = target
            raw.put(b"schema", str(version).encode(), db=self.dbs["meta"])

    @property
    def schema_version(self) -> int:
        with self.env.begin() as raw:
            return int(raw.get(b"schema", db=self.dbs["meta"]))

    def view(self, fn: Callable[[Txn], T]) -> T:
        """Run ``fn`` in a read-only transaction and return its result."""
        with self.env.begin(write=False) as raw:
            return fn(Txn(self, raw))

    def update_sync(self, fn: Callable[[Txn], T]) -> T:
        """Run ``fn`` in one write transaction on this thread: committed if ``fn`` returns,
        rolled back (nothing written) if it raises. A commit the disk (or quota, or LMDB's
        map) has no room for raises :class:`ResourceExhausted`, as a full content store does."""
        import lmdb

        try:
            with self.env.begin(write=True) as raw:
                result = fn(Txn(self, raw))
            with self._generation_lock:
                self.generation += 1
            return result
        except lmdb.MapFullError as exc:
            raise ResourceExhausted(f"metadata database {self.path}: {exc}") from exc
        except lmdb.Error as exc:
            if any(os.strerror(e) in str(exc) for e in (errno.ENOSPC, errno.EDQUOT)):
                raise ResourceExhausted(f"metadata database {self.path}: {exc}") from exc
            raise

    async def update(self, fn: Callable[[Txn], T]) -> T:
        """:meth:`update_sync` in a worker thread, so the commit's fsync does not block the
        event loop. The context (namespace, log bindings) is carried into the thread."""
        return await asyncio.to_thread(self.update_sync, fn)

    def close(self) -> None:
        self.env.close()

