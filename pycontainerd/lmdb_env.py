"""The one place that opens an LMDB environment: named databases, a schema version checked
(and upgraded) on open, and :class:`Txn` — JSON values over raw LMDB transactions. Both LMDB
stores stand on it: the metadata database (:mod:`pycontainerd.metadata.db`) and each
snapshotter's own store (:mod:`pycontainerd.snapshots.storage`); ``pyctr admin check``
reads environments through :func:`read_rows` without opening them for writing.

Every environment keeps its schema version at key ``b"schema"`` of its ``meta`` database.
An open with a newer version than the code knows is refused (``FAILED_PRECONDITION``); an
older one is upgraded by the ordered migrations inside one write transaction; a new one is
stamped with the current version.

Durability: LMDB's default ``sync=True``/``metasync=True``: a commit returns only after its
pages are ``fsync``-ed, a transaction in flight when the process dies is rolled back
entirely, readers never block writers.
"""

from __future__ import annotations

import errno
import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import lmdb

from .errdefs import FailedPrecondition, InvalidArgument, ResourceExhausted, quote
from .fsutil import cloexec_fds_under

T = TypeVar("T")

NEARLY_FULL = 1 << 20
"""Free bytes below which an EIO from a commit is taken for a full disk (see ``_no_room``)."""

Migration = tuple[int, Callable[["Txn"], None]]
"""``(target version, migrate(txn))``."""


class Txn:
    """A transaction over an environment's named databases; JSON values in, JSON values out.
    ``raw`` is the LMDB transaction, for counters stored as plain bytes."""

    def __init__(self, env: LMDBEnv, txn: lmdb.Transaction) -> None:
        self._db = env
        self.raw = txn

    @property
    def max_key_size(self) -> int:
        """LMDB's key size limit (``MDB_MAXKEYSIZE``): longer or empty keys make every call
        fail with ``MDB_BAD_VALSIZE``."""
        return self._db.max_key_size

    def db(self, dbname: str) -> Any:
        """The handle of a named database, for a raw cursor or a raw put."""
        return self._db.dbs[dbname]

    def get(self, dbname: str, k: bytes) -> Any | None:
        value = self.get_bytes(dbname, k)
        return None if value is None else json.loads(value)

    def get_bytes(self, dbname: str, k: bytes) -> bytes | None:
        """The stored JSON as it is (for a store that memoizes what it decodes from it)."""
        if not k or len(k) > self.max_key_size:  # LMDB refuses such a key; no record has one
            return None
        return self.raw.get(k, db=self._db.dbs[dbname])

    def put(self, dbname: str, k: bytes, value: Any, overwrite: bool = True) -> bool:
        """Store ``value``; with ``overwrite=False`` return False if the key exists."""
        if not k or len(k) > self.max_key_size:
            raise InvalidArgument(f"name {quote(k.decode(errors='replace')[:100])}: empty or longer than "
                                  f"{self.max_key_size} bytes with its namespace")
        data = json.dumps(value, separators=(",", ":"), sort_keys=True).encode()
        return self.raw.put(k, data, db=self._db.dbs[dbname], overwrite=overwrite)

    def delete(self, dbname: str, k: bytes) -> bool:
        if not k or len(k) > self.max_key_size:
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
        keys = [k for k, _ in self.scan_bytes(dbname, prefix)]  # the values are not needed: not decoded
        for k in keys:
            self.delete(dbname, k)
        return len(keys)


class LMDBEnv:
    """An LMDB environment at ``path`` (a directory, created mode 0700) with the named
    databases ``dbs`` (``meta`` among them), its schema checked on open.

    Args:
        what: what the environment holds, for messages (``metadata``, ``snapshot metadata``).
        schema_version: the version this code writes.
        migrations: ordered upgrades from older versions.
        map_size: bytes of address space LMDB may use; the file grows only as needed.

    Raises:
        FailedPrecondition: the environment has a schema newer than this code.
    """

    def __init__(self, path: Path, *, what: str, dbs: Sequence[str], schema_version: int,
                 migrations: Sequence[Migration] = (), map_size: int, max_dbs: int | None = None,
                 max_readers: int = 512) -> None:
        self.path = Path(path)
        self.what = what
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.env: lmdb.Environment | None = lmdb.open(
            str(self.path), map_size=map_size, max_dbs=max_dbs or len(dbs), subdir=True, sync=True,
            metasync=True, max_readers=max_readers,
        )
        cloexec_fds_under(self.path)  # LMDB leaves its data file inheritable
        self.dbs = {name: self.env.open_db(name.encode()) for name in dbs}
        self.max_key_size = self.env.max_key_size()
        self._close_lock = threading.Lock()
        self.generation = 0
        """Bumped after every committed write (:meth:`update_sync`): a reader that reads
        it before its read transaction knows its data holds every write bumped so far."""
        self._generation_lock = threading.Lock()
        try:
            self._migrate(schema_version, migrations)
        except BaseException:
            self.close()
            raise

    def _migrate(self, schema_version: int, migrations: Sequence[Migration]) -> None:
        with self._env().begin(write=True) as raw:
            meta = self.dbs["meta"]
            current = raw.get(b"schema", db=meta)
            version = int(current) if current else 0
            if version > schema_version:
                raise FailedPrecondition(
                    f"{self.what} schema version {version} at {self.path} is newer than this "
                    f"pycontainerd understands ({schema_version})"
                )
            if version == 0:
                raw.put(b"schema", str(schema_version).encode(), db=meta)
                return
            txn = Txn(self, raw)
            for target, migrate in migrations:
                if target > version:
                    migrate(txn)
                    version = target
            raw.put(b"schema", str(version).encode(), db=meta)

    def _env(self) -> lmdb.Environment:
        if self.env is None:
            raise FailedPrecondition(f"{self.what} store {self.path} is closed")
        return self.env

    @property
    def schema_version(self) -> int:
        with self._env().begin() as raw:
            return int(raw.get(b"schema", db=self.dbs["meta"]))

    def view(self, fn: Callable[[Txn], T]) -> T:
        """Run ``fn`` in a read-only transaction and return its result."""
        with self._env().begin(write=False) as raw:
            return fn(Txn(self, raw))

    def update_sync(self, fn: Callable[[Txn], T]) -> T:
        """Run ``fn`` in one write transaction on this thread: committed if ``fn`` returns,
        rolled back (nothing written) if it raises. A commit the disk (or quota, or LMDB's
        map) has no room for raises :class:`ResourceExhausted`, as a full content store does."""
        try:
            with self._env().begin(write=True) as raw:
                result = fn(Txn(self, raw))
            with self._generation_lock:
                self.generation += 1
            return result
        except lmdb.MapFullError as exc:
            raise ResourceExhausted(f"{self.what} database {self.path}: {exc}") from exc
        except lmdb.Error as exc:
            if any(os.strerror(e) in str(exc) for e in (errno.ENOSPC, errno.EDQUOT)):
                raise ResourceExhausted(f"{self.what} database {self.path}: {exc}") from exc
            if os.strerror(errno.EIO) in str(exc) and self._no_room():
                raise ResourceExhausted(f"{self.what} database {self.path}: {exc} "
                                        f"({os.strerror(errno.ENOSPC).lower()})") from exc
            raise

    def _no_room(self) -> bool:
        """True when the filesystem under the database is (next to) full. LMDB reports a
        page write the disk cut short as EIO ("Input/output error": a short ``pwrite``, not
        a failing device), so a commit's EIO on a full disk is a full disk."""
        try:
            st = os.statvfs(self.path)
        except OSError:
            return False
        return st.f_bavail * st.f_frsize < NEARLY_FULL

    def close(self) -> None:
        """Close the environment; a second call does nothing."""
        with self._close_lock:
            if self.env is not None:
                self.env.close()
                self.env = None


def read_rows(path: Path, dbnames: Iterable[str]) -> dict[str, list[tuple[bytes, bytes]]]:
    """Every ``(key, value)`` of the named databases of the environment at ``path``, read in
    one read-only transaction without taking the writer's side (a database or an environment
    that does not exist yet reads as empty). Raises ``lmdb.Error`` for an unreadable one."""
    out: dict[str, list[tuple[bytes, bytes]]] = {name: [] for name in dbnames}
    if not (path / "data.mdb").exists():
        return out
    env = lmdb.open(str(path), readonly=True, lock=True, max_dbs=8, subdir=True, max_readers=512)
    try:
        with env.begin(write=False) as txn:
            for name in out:
                try:
                    db = env.open_db(name.encode(), txn=txn, create=False)
                except lmdb.NotFoundError:
                    continue
                out[name] = list(txn.cursor(db=db))
    finally:
        env.close()
    return out
