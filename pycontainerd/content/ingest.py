"""Writes in progress (ingests) of the local content store: :class:`Writer`, and the ingest
directory's small files and timestamps.

One ingest is ``ingest/<sha256 hex of ref>/`` under the store's root (see
:mod:`pycontainerd.content.local` for the whole layout). A :class:`Writer` holds its ref's
lock from :meth:`LocalStore.writer <pycontainerd.content.local.LocalStore.writer>` until
:meth:`~Writer.commit` or :meth:`~Writer.close`; commit verifies size and digest,
``fsync``-s it, makes the file read-only and renames it into ``blobs/``. Timestamps are written
in Go's ``time.MarshalText`` format, as containerd writes them. A full disk or quota becomes
:class:`~pycontainerd.errdefs.ResourceExhausted` (:func:`disk_full_is_exhausted`).
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import errno
import hashlib
import os
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

from .. import digest as digest_mod
from ..digest import ALGORITHM
from ..errdefs import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    OutOfRange,
    ResourceExhausted,
    quote,
)
from ..fsutil import fsync_dir
from ..log import get_logger
from . import INLINE_IO, Status

log = get_logger("content")
T = TypeVar("T")

BLOB_MODE = 0o444
INGEST_FILE_MODE = 0o644
INGEST_DIR_MODE = 0o755


NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


@contextlib.contextmanager
def disk_full_is_exhausted(what: str):
    """Turn an ``OSError`` for a full disk or quota (``ENOSPC``, ``EDQUOT``) into
    :class:`ResourceExhausted` (``<what>: No space left on device: resource exhausted``), so
    clients get ``RESOURCE_EXHAUSTED`` instead of an unknown error; other errors pass."""
    try:
        yield
    except OSError as exc:
        if exc.errno in NO_SPACE:
            raise ResourceExhausted(f"{what}: {os.strerror(exc.errno)}") from exc
        raise


# --- timestamps in Go's time.MarshalText format (RFC 3339 with nanoseconds) -------------

_RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$")


def format_timestamp(ns: int) -> str:
    """``ns`` since the epoch as RFC 3339 in UTC with nanoseconds (trailing zeros trimmed,
    like Go's ``time.RFC3339Nano``)."""
    seconds, nanos = divmod(ns, 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    frac = f".{nanos:09d}".rstrip("0") if nanos else ""
    return f"{base}{frac}Z"


def parse_timestamp(text: str) -> int:
    """Parse what :func:`format_timestamp` (or Go's ``MarshalText``, any offset) writes.

    Raises ValueError when ``text`` is not such a timestamp.
    """
    m = _RFC3339.match(text.strip())
    if not m:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    base, frac, zone = m.groups()
    seconds = calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S"))
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        seconds -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return seconds * 1_000_000_000 + int((frac or "0").ljust(9, "0"))


async def run_to_completion(fn: Callable[..., T], *args) -> T:
    """Run ``fn(*args)`` in a worker thread; if the caller is cancelled meanwhile, still
    wait for the thread to finish (file state must not change behind a released lock, a
    commit must not race a close) before the cancellation propagates."""
    task = asyncio.ensure_future(asyncio.to_thread(fn, *args))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait({task})
        raise


def write_small_file(path: Path, data: str) -> None:
    """Write a small metadata file whole or not at all (temp file with O_SYNC, rename)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_SYNC | os.O_CLOEXEC, INGEST_FILE_MODE)
    try:
        os.write(fd, data.encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_small_file(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        raise NotFound(f"open {path}: no such file or directory") from None



class IngestOwner(Protocol):
    """What a :class:`Writer` needs of the store that opened it
    (:class:`~pycontainerd.content.local.LocalStore`)."""

    def blob_path(self, digest: str) -> Path: ...

    def _unlock(self, ref: str) -> None: ...

    def _save_hasher(self, ref: str, offset: int, hasher: hashlib._Hash) -> None: ...


class Writer:
    """One write in progress; get it from :meth:`LocalStore.writer`.

    Holds its ref's lock until :meth:`commit` or :meth:`close`. Not safe for concurrent use
    by several tasks at once (a stream writes in order).
    """

    def __init__(
        self, store: IngestOwner, ref: str, path: Path, fd: int, status: Status, hasher: hashlib._Hash
    ) -> None:
        self._store = store
        self.ref = ref
        self._path = path
        self._fd: int | None = fd
        self._status = status
        self._hasher = hasher

    @property
    def closed(self) -> bool:
        return self._fd is None

    @property
    def offset(self) -> int:
        """Bytes written so far (the ingest's size)."""
        return self._status.offset

    def status(self) -> Status:
        """A copy of the ingest's status as this writer knows it."""
        s = self._status
        return Status(s.ref, s.offset, s.total, s.expected, s.started_at, s.updated_at)

    def digest(self) -> str:
        """The digest of the bytes written so far (``sha256:<hex>``)."""
        return f"{ALGORITHM}:{self._hasher.hexdigest()}"

    def _require_open(self, what: str) -> int:
        if self._fd is None:
            raise FailedPrecondition(f"cannot {what} on closed writer")
        return self._fd

    def _write_sync(self, fd: int, data: bytes) -> int:
        view = memoryview(data)
        try:
            while view:
                n = os.write(fd, view)
                view = view[n:]
        except OSError as exc:
            if exc.errno in NO_SPACE:  # drop the part that fit: the ingest stays resumable
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, self._status.offset)
                    os.lseek(fd, self._status.offset, os.SEEK_SET)
            with disk_full_is_exhausted(f"write ingest of ref {quote(self.ref)}"):
                raise
        self._hasher.update(data)
        return len(data)

    async def write(self, data: bytes, offset: int | None = None) -> int:
        """Append ``data``; returns its length.

        Args:
            offset: if given, where the caller believes the write lands; it must be the
                current offset (writes are append-only).

        Raises:
            OutOfRange: ``offset`` is not the current offset
                (``write @<offset> must occur at current offset <n>``).
            FailedPrecondition: the writer is closed.
            ResourceExhausted: the disk (or quota) is full; nothing of ``data`` is kept.
        """
        fd = self._require_open("write")
        if offset is not None and offset != self._status.offset:
            raise OutOfRange(f"write @{offset} must occur at current offset {self._status.offset}")
        if not data:
            return 0
        if len(data) <= INLINE_IO:
            n = self._write_sync(fd, data)
        else:
            n = await asyncio.to_thread(self._write_sync, fd, data)
        self._status.offset += n
        self._status.updated_at = time.time_ns()
        return n

    async def truncate(self, size: int = 0) -> None:
        """Discard everything written (only ``size == 0`` is supported, as in containerd).

        Raises:
            InvalidArgument: ``size`` is not 0.
        """
        fd = self._require_open("truncate")
        if size != 0:
            raise InvalidArgument(f"truncate to {size} bytes: only 0 is supported")
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        self._hasher = hashlib.sha256()
        self._status.offset = 0
        self._status.updated_at = time.time_ns()

    async def commit(self, size: int = 0, expected: str = "") -> str:
        """Verify and publish the blob; returns its digest. The writer is closed afterwards,
        whatever the outcome.

        Args:
            size: expected size in bytes, 0 to skip the check.
            expected: expected digest, ``""`` to skip the check.

        Raises:
            FailedPrecondition: ``unexpected commit size <actual>, expected <size>`` or
                ``unexpected commit digest <actual>, expected <expected>``; the ingest is
                left as it was (resumable or abortable), no blob appears.
            AlreadyExists: the blob was already committed (``content <digest>``); the
                ingest is removed — callers treat this as success.
            InvalidArgument: bad ``expected``.
            NotFound: the ingest was aborted while this writer held it.
            ResourceExhausted: the disk (or quota) is full; no blob appears.
        """
        self._require_open("commit")
        return await run_to_completion(self.commit_sync, size, expected)

    def commit_sync(self, size: int = 0, expected: str = "") -> str:
        """:meth:`commit` on the calling thread (blocking: fsync, rename). The namespaced
        store calls it inside its metadata transaction, so that garbage collection (one
        write transaction) never sees the blob without its reference."""
        fd = self._require_open("commit")
        self._fd = None
        try:
            with disk_full_is_exhausted(f"commit ingest of ref {quote(self.ref)}"):
                return self._commit_sync(fd, size, expected)
        finally:
            self._store._unlock(self.ref)

    def _commit_sync(self, fd: int, size: int, expected: str) -> str:
        try:
            if expected:
                digest_mod.validate(expected)
            os.fsync(fd)
            actual_size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        dgst = self.digest()
        try:
            if size > 0 and size != actual_size:
                raise FailedPrecondition(f"unexpected commit size {actual_size}, expected {size}")
            if expected and expected != dgst:
                raise FailedPrecondition(f"unexpected commit digest {dgst}, expected {expected}")
        except FailedPrecondition:
            self._store._save_hasher(self.ref, actual_size, self._hasher)
            raise
        target = self._store.blob_path(dgst)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            shutil.rmtree(self._path, ignore_errors=True)
            raise AlreadyExists(f"content {dgst}")
        data = self._path / "data"
        try:
            os.chmod(data, BLOB_MODE)
        except FileNotFoundError:
            raise NotFound(f"ingest ref {quote(self.ref)} was aborted while writing") from None
        try:
            os.rename(data, target)
        except BaseException:
            os.chmod(data, INGEST_FILE_MODE)
            self._store._save_hasher(self.ref, actual_size, self._hasher)
            raise
        now = time.time_ns()
        try:
            os.utime(target, ns=(now, now))
        except OSError as exc:
            log.error("failed to change file time to commit time", digest=dgst, error=str(exc))
        fsync_dir(target.parent)
        shutil.rmtree(self._path, ignore_errors=True)
        return dgst

    async def close(self) -> None:
        """Stop writing but keep the ingest for a later resume: flushes the data, records
        ``updatedat`` and releases the ref. Closing twice, or after commit, does nothing."""
        if self._fd is not None:
            await run_to_completion(self.close_sync)

    def close_sync(self) -> None:
        """:meth:`close` on the calling thread (blocking: fsync)."""
        fd = self._fd
        if fd is None:
            return
        self._fd = None
        try:
            with disk_full_is_exhausted(f"close ingest of ref {quote(self.ref)}"):
                self._close_sync(fd)
        finally:
            self._store._unlock(self.ref)

    def _close_sync(self, fd: int) -> None:
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        self._store._save_hasher(self.ref, self._status.offset, self._hasher)
        try:
            write_small_file(self._path / "updatedat", format_timestamp(self._status.updated_at))
        except OSError as exc:  # aborted meanwhile: nothing left to resume
            log.debug("could not record updatedat", ref=self.ref, error=str(exc))
