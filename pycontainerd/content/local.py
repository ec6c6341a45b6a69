"""The local content store: blobs and ingests as files (containerd's ``content/local``).

Layout under ``root`` (``<daemon root>/io.containerd.content.v1.content``), the same as
containerd's so the files mean the same thing to a person reading them::

    blobs/sha256/<hex>                committed blob, mode 0444, mtime = commit time
    ingest/<sha256 hex of ref>/       one write in progress
        ref                           the ref, as given
        data                          the bytes written so far
        startedat, updatedat          RFC 3339 timestamps (Go's time.MarshalText format)
        total                         expected total size in decimal, when known
        expected                      expected digest, when given

A write (:class:`~pycontainerd.content.ingest.Writer`, in :mod:`.ingest`) is identified by its ``ref``; only one writer may hold a ref at a
time (the second gets :class:`~pycontainerd.errdefs.Unavailable` ``ref ... locked``). A ref
whose ingest directory exists is *resumed*: the writer continues at the current size of
``data``. The SHA-256 state of a closed writer is kept in memory, so resuming in the same
process hashes nothing again; after a daemon restart the existing data is hashed once, in a
worker thread. Commit verifies size and digest, ``fsync``s, makes the file read-only and
renames it into ``blobs/`` — a blob is either complete or absent.

This layer knows nothing of namespaces or labels: :mod:`pycontainerd.metadata.content` puts
the namespaced view on top. Blocking file work (hashing, fsync, large reads and writes)
runs in worker threads (:func:`asyncio.to_thread`).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import shutil
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from .. import digest as digest_mod
from .. import filters as filters_mod
from ..digest import ALGORITHM
from ..errdefs import (
    AlreadyExists,
    ContainerdError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    OutOfRange,
    Unavailable,
    quote,
)
from ..log import get_logger
from . import CHUNK, INLINE_IO, Info, Status
from .ingest import (
    INGEST_DIR_MODE,
    INGEST_FILE_MODE,
    Writer,
    disk_full_is_exhausted,
    format_timestamp,
    parse_timestamp,
    read_small_file,
    write_small_file,
)

log = get_logger("content")

LOCK_ATTEMPTS = 10
"""How often :meth:`LocalStore.writer` tries a locked ref (with random backoff, as
containerd does: up to 2**n ms after the n-th failure) before raising Unavailable."""


def _hash_file(path: Path) -> tuple[int, hashlib._Hash]:
    hasher = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            hasher.update(chunk)
            size += len(chunk)
    return size, hasher


class ReaderAt:
    """Random access to one committed blob (containerd's ``content.ReaderAt``).

    The file stays open until :meth:`close`, so a blob removed by garbage collection
    meanwhile stays readable through this reader. Usable as a (sync or async) context
    manager.
    """

    def __init__(self, path: Path, digest: str) -> None:
        try:
            self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotFound(f"content {digest}: blob not found") from None
        self.digest = digest
        self.size = os.fstat(self._fd).st_size
        """Size of the blob in bytes."""

    def read_sync(self, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes from ``offset``; fewer only at the end of the blob.

        Raises:
            InvalidArgument: negative offset or size.
        """
        if offset < 0 or size < 0:
            raise InvalidArgument(f"read of {size} bytes at offset {offset}: negative value")
        if self._fd < 0:
            raise FailedPrecondition(f"reader of {self.digest} is closed")
        out = bytearray()
        while len(out) < size:
            chunk = os.pread(self._fd, min(size - len(out), CHUNK), offset + len(out))
            if not chunk:
                break
            out += chunk
        return bytes(out)

    async def read(self, offset: int, size: int) -> bytes:
        """:meth:`read_sync`, in a worker thread when ``size`` is large."""
        if size <= INLINE_IO:
            return self.read_sync(offset, size)
        return await asyncio.to_thread(self.read_sync, offset, size)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> ReaderAt:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    async def __aenter__(self) -> ReaderAt:
        return self

    async def __aexit__(self, *exc) -> None:
        self.close()


class LocalStore:
    """The blobs and ingests under ``root``; see the module docstring for the layout.

    Args:
        root: the store's directory (created with ``ingest/`` and ``blobs/sha256``).
        lock_attempts: how many times :meth:`writer` tries a ref held by another writer.
    """

    def __init__(self, root: Path, lock_attempts: int = LOCK_ATTEMPTS) -> None:
        self.root = Path(root)
        self.lock_attempts = max(1, lock_attempts)
        (self.root / "ingest").mkdir(parents=True, exist_ok=True)
        (self.root / "blobs" / ALGORITHM).mkdir(parents=True, exist_ok=True)
        self._mu = threading.Lock()
        self._locks: dict[str, int] = {}  # ref -> locked since (ns)
        self._collected: set[str] = set()  # refs to remove when their writer lets go
        self._hashers: dict[str, tuple[int, hashlib._Hash]] = {}  # ref -> (offset, state)
        self._remove_unnamed_ingests()

    def _remove_unnamed_ingests(self) -> None:
        """Remove ingest directories that have no ``ref`` file: a daemon killed while it
        opened a write leaves one, and nothing could resume or collect it (it names no
        ref). Safe here: no writer runs while the store is being opened."""
        for entry in os.scandir(self.root / "ingest"):
            if entry.is_dir(follow_symlinks=False) and not os.path.exists(os.path.join(entry.path, "ref")):
                log.warning("removing an ingest left without a ref by a crash", path=entry.path)
                shutil.rmtree(entry.path, ignore_errors=True)

    # --- paths ----------------------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        """``blobs/sha256/<hex>``. Raises :class:`InvalidArgument` for a bad digest."""
        digest_mod.validate(digest)
        algorithm, _, encoded = digest.partition(":")
        return self.root / "blobs" / algorithm / encoded

    def ingest_path(self, ref: str) -> Path:
        """``ingest/<sha256 hex of ref>`` (fixed length whatever the ref)."""
        return self.root / "ingest" / hashlib.sha256(ref.encode()).hexdigest()

    # --- blobs ----------------------------------------------------------------------------

    def info_sync(self, digest: str) -> Info:
        """Size and times of a blob (``created_at`` = mtime, ``updated_at`` = atime).

        Raises:
            InvalidArgument: bad digest.
            NotFound: no such blob.
        """
        path = self.blob_path(digest)
        try:
            st = path.stat()
        except FileNotFoundError:
            raise NotFound(f"content {digest}") from None
        return Info(digest, st.st_size, st.st_mtime_ns, st.st_atime_ns)

    async def info(self, digest: str) -> Info:
        """See :meth:`info_sync`."""
        return self.info_sync(digest)

    def exists(self, digest: str) -> bool:
        """True if the blob is committed here (False also for an invalid digest)."""
        return digest_mod.is_valid(digest) and self.blob_path(digest).is_file()

    async def reader_at(self, digest: str) -> ReaderAt:
        """Open a blob for reading. Raises InvalidArgument (bad digest), NotFound."""
        return ReaderAt(self.blob_path(digest), digest)

    async def read(self, digest: str, offset: int = 0, size: int = -1) -> bytes:
        """Read ``size`` bytes (all to the end when negative) from ``offset`` of a blob.

        Raises:
            InvalidArgument: bad digest.
            NotFound: no such blob.
            OutOfRange: ``offset`` is past the end of the blob.
        """
        with await self.reader_at(digest) as ra:
            if offset > ra.size:
                raise OutOfRange(f"read past object length {ra.size} bytes")
            if size < 0 or offset + size > ra.size:
                size = ra.size - offset
            return await ra.read(offset, size)

    def walk_sync(self, filters: Iterable[str] = ()) -> list[Info]:
        """Every blob (matching ``filters``, containerd's content fields ``digest`` and
        ``labels.*``), in digest order. Files whose names are not valid digests are
        skipped with an error in the log."""
        match = filters_mod.parse_all(filters)
        out: list[Info] = []
        for algo_dir in sorted((self.root / "blobs").iterdir()):
            if not algo_dir.is_dir() or algo_dir.name != ALGORITHM:
                continue
            for entry in sorted(os.scandir(algo_dir), key=lambda e: e.name):
                digest = f"{algo_dir.name}:{entry.name}"
                if not digest_mod.is_valid(digest):
                    log.error("invalid digest for blob path", path=entry.path)
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                info = Info(digest, st.st_size, st.st_mtime_ns, st.st_atime_ns)
                if match.match(adapt_info(info)):
                    out.append(info)
        return out

    async def walk(self, filters: Iterable[str] = ()) -> list[Info]:
        """:meth:`walk_sync` in a worker thread (garbage collection's sweep uses it)."""
        return await asyncio.to_thread(self.walk_sync, list(filters))

    def delete_sync(self, digest: str) -> None:
        """Remove a blob file. Raises InvalidArgument (bad digest), NotFound."""
        try:
            self.blob_path(digest).unlink()
        except FileNotFoundError:
            raise NotFound(f"content {digest}") from None

    async def delete(self, digest: str) -> None:
        """See :meth:`delete_sync`. Only garbage collection should call this: namespaces
        delete their references, never the file."""
        self.delete_sync(digest)

    # --- ingests --------------------------------------------------------------------------

    def _status_sync(self, path: Path) -> Status:
        data = path / "data"
        try:
            st = data.stat()
        except FileNotFoundError:
            raise NotFound(f"stat {data}: no such file or directory") from None
        ref = read_small_file(path / "ref")
        try:
            started = parse_timestamp(read_small_file(path / "startedat"))
            updated = parse_timestamp(read_small_file(path / "updatedat"))
        except ValueError as exc:
            raise FailedPrecondition(f"ingest {quote(ref)}: {exc}") from exc
        # updatedat is written on close only; the data file's mtime may be newer.
        updated = max(updated, st.st_mtime_ns)
        try:
            total = int((path / "total").read_text())
        except (OSError, ValueError):
            total = 0
        try:
            expected = (path / "expected").read_text()
        except OSError:
            expected = ""
        return Status(ref, st.st_size, total, expected, started, updated)

    def status_sync(self, ref: str) -> Status:
        """The ingest of ``ref``. Raises :class:`NotFound` when there is none."""
        return self._status_sync(self.ingest_path(ref))

    async def status(self, ref: str) -> Status:
        """See :meth:`status_sync`."""
        return self.status_sync(ref)

    def list_statuses_sync(self, filters: Iterable[str] = ()) -> list[Status]:
        """Every ingest (matching ``filters`` on field ``ref``), ordered by ref. Ingests that
        vanish while listing (committed or aborted meanwhile) are skipped."""
        match = filters_mod.parse_all(filters)
        out = []
        for entry in os.scandir(self.root / "ingest"):
            try:
                status = self._status_sync(Path(entry.path))
            except (NotFound, NotADirectoryError):
                continue  # committed or aborted while listing
            except (ContainerdError, OSError) as exc:
                log.error("unreadable ingest skipped", path=entry.path, error=str(exc))
                continue
            if match.match(adapt_status(status)):
                out.append(status)
        return sorted(out, key=lambda s: s.ref)

    async def list_statuses(self, filters: Iterable[str] = ()) -> list[Status]:
        """See :meth:`list_statuses_sync` (runs in a worker thread)."""
        return await asyncio.to_thread(self.list_statuses_sync, list(filters))

    def walk_status_refs_sync(self) -> list[str]:
        """The ref of every ingest directory (for garbage collection); unreadable ones are
        logged and skipped."""
        refs = []
        for entry in os.scandir(self.root / "ingest"):
            try:
                refs.append((Path(entry.path) / "ref").read_text())
            except OSError as exc:
                log.error("failed to read ingest ref", path=entry.path, error=str(exc))
        return sorted(refs)

    def abort_sync(self, ref: str) -> None:
        """Remove the ingest of ``ref`` and everything written to it.

        A writer still holding the ref fails on its next commit. Raises :class:`NotFound`
        when there is no such ingest.
        """
        path = self.ingest_path(ref)
        with self._mu:
            self._hashers.pop(ref, None)
        if not path.exists():
            raise NotFound(f"ingest ref {quote(ref)}")
        shutil.rmtree(path, ignore_errors=True)

    async def abort(self, ref: str) -> None:
        """See :meth:`abort_sync` (runs in a worker thread)."""
        await asyncio.to_thread(self.abort_sync, ref)

    # --- writers --------------------------------------------------------------------------

    def _try_lock(self, ref: str) -> None:
        with self._mu:
            since = self._locks.get(ref)
            if since is None:
                self._locks[ref] = time.time_ns()
                return
        held = (time.time_ns() - since) / 1e9
        raise Unavailable(f"ref {ref} locked for {held:.3f}s (since {format_timestamp(since)})")

    def _unlock(self, ref: str) -> None:
        with self._mu:
            self._locks.pop(ref, None)
            collected = ref in self._collected
            self._collected.discard(ref)
        if collected:
            shutil.rmtree(self.ingest_path(ref), ignore_errors=True)
            log.info("removed an ingest collected while it was being written", ref=ref)

    def collect_ingest_sync(self, ref: str) -> bool:
        """Garbage collection of the ingest of ``ref``: removed now (True), or — while a
        writer holds it — as soon as that writer closes (False), the way containerd's
        collector removes an ingest whatever writes to it. So an ingest that no namespace
        records never stays on disk, unlisted by ``ListStatuses``. Raises
        :class:`NotFound` when there is no such ingest."""
        with self._mu:
            if ref in self._locks:
                self._collected.add(ref)
                return False
        self.abort_sync(ref)
        return True

    def locked(self, ref: str) -> bool:
        """True while a :class:`Writer` holds ``ref``."""
        with self._mu:
            return ref in self._locks

    async def writer(self, ref: str, total: int = 0, expected: str = "") -> Writer:
        """Begin, or resume, the write identified by ``ref``.

        Args:
            ref: the client's name for this write; any non-empty string.
            total: expected size in bytes, 0 if unknown (recorded in ``total``).
            expected: expected digest, ``""`` if unknown.

        Returns:
            a :class:`Writer` holding the ref's lock until commit or close. A resumed write
            starts at the ingest's current offset; an ingest that cannot be resumed (its
            files are damaged, or it recorded a different non-zero ``total``) is started
            again from nothing, as containerd does.

        Raises:
            InvalidArgument: empty ref or bad ``expected``.
            AlreadyExists: ``expected`` is already committed here (``content <digest>``).
            Unavailable: another writer holds the ref (``ref <ref> locked ...``) after
                :attr:`lock_attempts` tries.
        """
        if not ref:
            raise InvalidArgument("ref must not be empty")
        if expected:
            digest_mod.validate(expected)
        for attempt in range(self.lock_attempts):
            try:
                self._try_lock(ref)
                break
            except Unavailable:
                if attempt == self.lock_attempts - 1:
                    raise
                await asyncio.sleep(random.randrange(1 << attempt) / 1000)
        task = asyncio.ensure_future(asyncio.to_thread(self._open_sync_mapped, ref, total, expected))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            await asyncio.wait({task})
            if not task.cancelled() and task.exception() is None:
                await task.result().close()  # closes the file and releases the ref
            self._unlock(ref)
            raise
        except BaseException:
            self._unlock(ref)
            raise

    def _open_sync_mapped(self, ref: str, total: int, expected: str) -> Writer:
        with disk_full_is_exhausted(f"open ingest of ref {quote(ref)}"):
            return self._open_sync(ref, total, expected)

    def _open_sync(self, ref: str, total: int, expected: str) -> Writer:
        if expected and self.blob_path(expected).exists():
            raise AlreadyExists(f"content {expected}")
        path = self.ingest_path(ref)
        data = path / "data"
        resumed: Status | None = None
        hasher = None
        try:
            path.mkdir(mode=INGEST_DIR_MODE)
        except FileExistsError:
            try:
                resumed = self._resume_sync(ref, path, total)
                offset, hasher = self._resume_hash(ref, data)
                resumed.offset = offset
            except (ContainerdError, OSError) as exc:
                log.info("failed to resume ingest; starting it again", ref=ref, path=str(path), error=str(exc))
                resumed = None
        if resumed is None:
            with self._mu:
                self._hashers.pop(ref, None)
            now = time.time_ns()
            write_small_file(path / "ref", ref)
            write_small_file(path / "startedat", format_timestamp(now))
            write_small_file(path / "updatedat", format_timestamp(now))
            for name, value in (("total", str(total) if total > 0 else ""), ("expected", expected)):
                if value:
                    write_small_file(path / name, value)
                else:
                    (path / name).unlink(missing_ok=True)
            fd = os.open(data, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, INGEST_FILE_MODE)
            return Writer(self, ref, path, fd, Status(ref, 0, total, expected, now, now), hashlib.sha256())
        fd = os.open(data, os.O_WRONLY | os.O_CLOEXEC)
        os.lseek(fd, resumed.offset, os.SEEK_SET)
        if expected and not resumed.expected:
            resumed.expected = expected
        assert hasher is not None
        return Writer(self, ref, path, fd, resumed, hasher)

    def _resume_sync(self, ref: str, path: Path, total: int) -> Status:
        status = self._status_sync(path)
        if status.ref != ref:
            # a corrupt layout or a collision of sha256(ref); never continue someone else's data
            raise FailedPrecondition(f"ref key does not match: {ref} != {status.ref}")
        if total > 0 and status.total > 0 and total != status.total:
            raise FailedPrecondition(f"provided total differs from status: {total} != {status.total}")
        return status

    def _resume_hash(self, ref: str, data: Path) -> tuple[int, hashlib._Hash]:
        size = data.stat().st_size
        with self._mu:
            saved = self._hashers.pop(ref, None)
        if saved is not None and saved[0] == size:
            return saved
        return _hash_file(data)

    def _save_hasher(self, ref: str, offset: int, hasher: hashlib._Hash) -> None:
        with self._mu:
            self._hashers[ref] = (offset, hasher)


def adapt_info(info: Info) -> filters_mod.Adaptor:
    """Filter fields of a blob (containerd's ``content.AdaptInfo``): ``digest``,
    ``labels.<key>``; ``size`` is accepted but never matches (containerd leaves it a TODO)."""

    def adaptor(fieldpath):
        if not fieldpath:
            return None
        if fieldpath[0] == "digest":
            return info.digest
        if fieldpath[0] == "labels":
            return filters_mod.adapt_labels(fieldpath, info.labels)
        return None

    return adaptor


def adapt_status(status: Status) -> filters_mod.Adaptor:
    """Filter fields of an ingest (containerd's ``adaptContentStatus``): ``ref`` only."""

    def adaptor(fieldpath):
        if fieldpath and fieldpath[0] == "ref":
            return status.ref
        return None

    return adaptor
