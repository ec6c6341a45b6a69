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

The kind names are containerd's bucket names (``core/metadata/buckets.go``); the keys are
built and parsed by :mod:`.keys` only. An open with a newer schema than this code knows is
refused; an older one is upgraded by the ordered :data:`MIGRATIONS` inside one write
transaction (both by :class:`pycontainerd.lmdb_env.LMDBEnv`, which also owns :class:`Txn`).

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
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from ..lmdb_env import LMDBEnv, Migration, Txn

__all__ = ["DEFAULT_MAP_SIZE", "MIGRATIONS", "SCHEMA_VERSION", "MetadataDB", "Txn"]

SCHEMA_VERSION = 1
DEFAULT_MAP_SIZE = 8 << 30  # bytes of address space; the file grows only as used

T = TypeVar("T")

MIGRATIONS: list[Migration] = []
"""``(target version, migrate(txn))`` in order; empty while the schema is at version 1."""


class MetadataDB(LMDBEnv):
    """The LMDB environment of the metadata and its schema.

    Args:
        path: directory of the environment (created, mode 0700).
        map_size: bytes of address space LMDB may use (the file grows as needed up to this).

    Raises:
        FailedPrecondition: the database has a schema newer than this code.
    """

    def __init__(self, path: Path, map_size: int = DEFAULT_MAP_SIZE) -> None:
        super().__init__(path, what="metadata", dbs=("meta", "namespaces", "objects"),
                         schema_version=SCHEMA_VERSION, migrations=MIGRATIONS, map_size=map_size, max_dbs=8,
                         max_readers=512)

    async def update(self, fn: Callable[[Txn], T]) -> T:
        """:meth:`update_sync` in a worker thread, so the commit's fsync does not block the
        event loop. The context (namespace, log bindings) is carried into the thread."""
        return await asyncio.to_thread(self.update_sync, fn)
