"""The garbage collection scheduler (``io.containerd.gc.v1.scheduler``).

Deletes call :meth:`Scheduler.schedule`; ``sync`` deletes and tests await
:meth:`Scheduler.collect`, which runs one collection now (collections never overlap). One
collection also runs ``startup_delay`` seconds after the daemon starts, to finish what a
crash interrupted.

When a scheduled collection runs follows containerd's scheduler: at least ``schedule_delay``
after the delete, and late enough that collecting pauses the daemon for no more than
``pause_threshold`` of its time (average collection time ÷ ``pause_threshold``, counted from
the end of the last collection) — unless ``deletion_threshold`` deletes (when above 0) are
waiting. Deletes in the meantime coalesce into one collection, and a write right after a
delete does not wait behind a collection it triggered.

A delete that removed a backend's reference itself (a content or snapshot delete) names
that backend (``schedule("content")``); a scheduled collection sweeps those backends and
the ones whose references it removed, not the others (:func:`pycontainerd.metadata.gc.collect`).
The first collection of a scheduler, and every :meth:`Scheduler.collect` (unless asked for
the dirty backends only), sweeps every backend (what a crash, or a delete that did not say,
left behind).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from .log import get_logger
from .metadata import gc
from .metadata.db import MetadataDB

log = get_logger("gc")


class Scheduler:
    """Runs :func:`pycontainerd.metadata.gc.collect` off the event loop.

    Args:
        db: the metadata database.
        sweepers: backend sweepers by name (content store, snapshotters), called inside the
            collection's transaction with its :class:`~pycontainerd.metadata.gc.Result`.
        schedule_delay: seconds between a :meth:`schedule` and the collection.
        startup_delay: seconds after :meth:`start` before the first collection.
    """

    def __init__(self, db: MetadataDB, sweepers: Mapping[str, gc.Sweeper] | None = None,
                 schedule_delay: float = 0.0, startup_delay: float = 0.1, pause_threshold: float = 0.0,
                 deletion_threshold: int = 0) -> None:
        self.db = db
        self.sweepers: dict[str, gc.Sweeper] = dict(sweepers or {})
        self.schedule_delay = schedule_delay
        self.startup_delay = startup_delay
        self.pause_threshold = pause_threshold
        self.deletion_threshold = deletion_threshold
        self._deletions = 0
        self._seconds = 0.0  # time spent collecting, over ``collections``
        self._ended = 0.0  # loop time the last collection ended
        self._sleeping = False
        self._lock = asyncio.Lock()
        self._pending: asyncio.Task | None = None
        self._startup: asyncio.Task | None = None
        self.collections = 0
        self.last: gc.Result | None = None
        self._dirty: set[str] | None = None  # None: every backend (until the first collection)

    def add_sweeper(self, name: str, sweeper: gc.Sweeper) -> None:
        self.sweepers[name] = sweeper

    def start(self) -> None:
        """Schedule the start-up collection (call from the running loop)."""
        self._startup = asyncio.get_running_loop().create_task(self._later(self.startup_delay))

    def schedule(self, *dirty: str) -> None:
        """Ask for a collection soon; several asks before it runs make one collection.
        ``dirty``: sweeper names of backends the caller removed references from."""
        if self._dirty is not None:
            self._dirty.update(dirty)
        self._deletions += 1
        if self._pending is not None and not self._pending.done():
            if not (self._sleeping and self._threshold_reached()):
                return
            self._pending.cancel()  # asleep until the pause threshold: collect sooner
        self._pending = asyncio.get_running_loop().create_task(self._later(self._delay()))

    def _threshold_reached(self) -> bool:
        return 0 < self.deletion_threshold <= self._deletions

    def _delay(self) -> float:
        if self.pause_threshold <= 0 or not self.collections or self._threshold_reached():
            return self.schedule_delay
        average = self._seconds / self.collections
        interval = average / min(self.pause_threshold, 1.0) - average
        since = asyncio.get_running_loop().time() - self._ended
        return max(self.schedule_delay, interval - since)

    async def _later(self, delay: float) -> None:
        self._sleeping = True
        try:
            await asyncio.sleep(delay)
        finally:
            self._sleeping = False
        try:
            await self._collect(dirty_only=True)
        except Exception as exc:  # logged; the next schedule retries
            log.error("garbage collection failed", error=str(exc), exc_info=exc)
            return
        if self._deletions:  # deletes that came while this one collected
            self._pending = asyncio.get_running_loop().create_task(self._later(self._delay()))

    async def collect(self, every_backend: bool = True) -> gc.Result:
        """Run one collection now and return its result. It sweeps every backend, or with
        ``every_backend=False`` only those a delete or this collection left something to
        remove in (containerd's synchronous deletes: a ``RemoveImage`` need not walk a
        snapshotter its image never used)."""
        return await self._collect(dirty_only=not every_backend)

    async def _collect(self, dirty_only: bool) -> gc.Result:
        async with self._lock:
            loop = asyncio.get_running_loop()
            started = loop.time()
            self._deletions = 0
            taken, self._dirty = self._dirty, set()
            dirty = taken if dirty_only else None
            try:
                result = await asyncio.to_thread(
                    self.db.update_sync, lambda txn: gc.collect(txn, self.sweepers, dirty=dirty))
            except BaseException:
                # rolled back: what was dirty still is
                self._dirty = None if taken is None else self._dirty | taken
                raise
            # committed: the metadata write lock is free again while directories are deleted
            await asyncio.to_thread(self._after_commit, result)
            self._ended = loop.time()
            self._seconds += self._ended - started
        self.collections += 1
        self.last = result
        if result.removed or any(result.backend_removed.values()):
            log.info("garbage collected", removed=len(result.removed), backends=result.backend_removed,
                     ms=round(result.seconds * 1000, 2))
        return result

    @staticmethod
    def _after_commit(result: gc.Result) -> None:
        for work in result.after_commit:
            try:
                work()
            except Exception as exc:  # logged; what is left is swept by a later collection
                log.warning("garbage collection cleanup failed", error=str(exc), exc_info=exc)

    async def close(self) -> None:
        for task in (self._pending, self._startup):
            if task is not None and not task.done():
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
