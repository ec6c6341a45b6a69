"""The bridge the generated sync client runs the async client through.

A :class:`Portal` owns one private event loop in a daemon thread. Every call of the sync
facade (``pycontainerd.client._sync``) becomes a coroutine run on that loop, and the
calling thread waits for its result:

* :meth:`Portal.call` — ``await coro`` → its value (exceptions re-raised as they are, so
  callers see the same :mod:`pycontainerd.errdefs` types as async callers);
* :meth:`Portal.iterate` — an async iterator → a sync iterator (one item per step; closing
  the sync iterator closes the async one);
* :meth:`Portal.context` — an async context manager → a sync one.

Context variables (the client's lease, :func:`~.connection.using_lease`) must survive from
one call to the next, as they do for code in one asyncio task: every calling thread gets
its own :class:`contextvars.Context`, and each coroutine it submits runs in that context.
So ``with client.lease():`` in the sync client covers the calls made inside the block by
the same thread, exactly like ``async with client.lease():`` in one task.

``Ctrl-C`` while waiting cancels the coroutine on the loop before re-raising.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


class Portal:
    """A private event loop in a daemon thread (see module doc)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._local = threading.local()
        self._thread = threading.Thread(target=self._run, name="pycontainerd-client-loop", daemon=True)
        self._closed = False
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def _context(self) -> contextvars.Context:
        ctx = getattr(self._local, "context", None)
        if ctx is None:
            ctx = self._local.context = contextvars.Context()
        return ctx

    def submit(self, coro: Awaitable[T]) -> concurrent.futures.Future[T]:
        """Schedule ``coro`` on the loop (in the calling thread's context)."""
        if self._closed:
            raise RuntimeError("the client is closed")
        if threading.current_thread() is self._thread:
            raise RuntimeError("a sync client method was called from its own event loop thread")
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        ctx = self._context()

        def start() -> None:
            if not future.set_running_or_notify_cancel():
                coro.close()  # type: ignore[union-attr]
                return
            task = self.loop.create_task(coro, context=ctx)  # type: ignore[arg-type]

            def done(t: asyncio.Task) -> None:
                if t.cancelled():
                    future.cancel()
                elif t.exception() is not None:
                    future.set_exception(t.exception())
                else:
                    future.set_result(t.result())

            task.add_done_callback(done)
            future.__dict__["task"] = task

        self.loop.call_soon_threadsafe(start)
        return future

    def call(self, coro: Awaitable[T]) -> T:
        """Run ``coro`` on the loop and return its result (see module doc)."""
        future = self.submit(coro)
        try:
            return future.result()
        except KeyboardInterrupt:
            task = future.__dict__.get("task")
            if task is not None:
                self.loop.call_soon_threadsafe(task.cancel)
            raise
        except concurrent.futures.CancelledError:
            raise KeyboardInterrupt from None

    def iterate(self, aiter: AsyncIterator[Any], wrap: Callable[[Any], Any] | None = None) -> Iterator[Any]:
        """A sync iterator over ``aiter``; items go through ``wrap`` when given."""
        it = aiter.__aiter__()

        async def step() -> tuple[bool, Any]:
            try:
                return True, await it.__anext__()
            except StopAsyncIteration:
                return False, None

        def gen() -> Iterator[Any]:
            try:
                while True:
                    more, item = self.call(step())
                    if not more:
                        return
                    yield wrap(item) if wrap is not None else item
            finally:
                aclose = getattr(it, "aclose", None)
                if aclose is not None and not self._closed:
                    with contextlib.suppress(Exception):
                        self.call(aclose())

        return gen()

    @contextlib.contextmanager
    def context(self, acm: Any, wrap: Callable[[Any], Any] | None = None) -> Iterator[Any]:
        """A sync context manager driving the async context manager ``acm``."""
        value = self.call(acm.__aenter__())
        try:
            yield wrap(value) if wrap is not None else value
        except BaseException as exc:
            if not self.call(acm.__aexit__(type(exc), exc, exc.__traceback__)):
                raise
        else:
            self.call(acm.__aexit__(None, None, None))

    def close(self) -> None:
        """Stop the loop and join its thread (pending tasks are cancelled first)."""
        if self._closed:
            return

        async def shutdown() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            self.call(shutdown())
        self._closed = True
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self.loop.close()
