"""A single-threaded event loop on ``epoll``: fd readiness, timers and signals.

The shim runs everything on one of these — its ttrpc server, the stdio copies, the OOM
eventfd and the child reaper — so it needs neither threads nor asyncio. Callbacks run one
at a time, to completion; a callback that blocks (a ``runc`` call) delays the others but
never races them, which is what makes the shim's bookkeeping simple (an exit is reaped only
between two callbacks, never in the middle of one).

Example::

    r = Reactor()
    r.add_signal_handler(signal.SIGCHLD, reap)
    r.add_reader(sock.fileno(), on_accept)
    r.call_later(5.0, r.stop)
    r.run()
"""

from __future__ import annotations

import _signal
import heapq
import itertools
import os
import select
import signal
import time
from collections.abc import Callable

Callback = Callable[[], None]


class Timer:
    """A scheduled call; :meth:`cancel` it before it runs to drop it."""

    __slots__ = ("when", "callback", "cancelled")

    def __init__(self, when: float, callback: Callback) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Reactor:
    """The loop. ``run()`` until :meth:`stop`; :meth:`run_once` for one round (tests)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._epoll = select.epoll()  # not selectors: one layer less of Python code in every shim
        self._registered: set[int] = set()
        self._fds: dict[int, list[Callback | None]] = {}  # fd -> [reader, writer]
        self._timers: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        self._soon: list[Callback] = []
        self._stopped = False
        self._signals: dict[int, Callback] = {}
        self._wakeup: tuple[int, int] | None = None
        self.clock = clock
        self.on_error: Callable[[BaseException], None] = _default_on_error

    # --- fds ------------------------------------------------------------------------------

    def _update(self, fd: int) -> None:
        reader, writer = self._fds[fd]
        mask = (select.EPOLLIN if reader else 0) | (select.EPOLLOUT if writer else 0)
        registered = fd in self._registered
        if mask == 0:
            del self._fds[fd]
            if registered:
                self._registered.discard(fd)
                try:
                    self._epoll.unregister(fd)
                except OSError:  # already closed
                    pass
        elif registered:
            self._epoll.modify(fd, mask)
        else:
            self._epoll.register(fd, mask)
            self._registered.add(fd)

    def add_reader(self, fd: int, callback: Callback) -> None:
        self._fds.setdefault(fd, [None, None])[0] = callback
        self._update(fd)

    def remove_reader(self, fd: int) -> None:
        if fd in self._fds:
            self._fds[fd][0] = None
            self._update(fd)

    def add_writer(self, fd: int, callback: Callback) -> None:
        self._fds.setdefault(fd, [None, None])[1] = callback
        self._update(fd)

    def remove_writer(self, fd: int) -> None:
        if fd in self._fds:
            self._fds[fd][1] = None
            self._update(fd)

    def forget(self, fd: int) -> None:
        """Drop every callback of ``fd`` (call before closing it)."""
        if fd in self._fds:
            self._fds[fd] = [None, None]
            self._update(fd)

    # --- time -----------------------------------------------------------------------------

    def call_later(self, delay: float, callback: Callback) -> Timer:
        t = Timer(self.clock() + max(0.0, delay), callback)
        heapq.heappush(self._timers, (t.when, next(self._seq), t))
        return t

    def call_soon(self, callback: Callback) -> None:
        """Run ``callback`` after the current callback, before waiting for I/O again."""
        self._soon.append(callback)

    # --- signals --------------------------------------------------------------------------

    def add_signal_handler(self, signum: int, callback: Callback) -> None:
        """Run ``callback`` in the loop (never in signal context) after ``signum`` arrives.

        Uses :func:`signal.set_wakeup_fd`; must be called from the main thread.
        """
        if self._wakeup is None:
            r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            self._wakeup = (r, w)
            signal.set_wakeup_fd(w, warn_on_full_buffer=False)
            self.add_reader(r, self._on_wakeup)
        self._signals[signum] = callback
        # _signal, not signal.signal: its enum conversions are pages every shim would copy
        _signal.signal(signum, _noop_handler)

    def _on_wakeup(self) -> None:
        assert self._wakeup is not None
        try:
            data = os.read(self._wakeup[0], 4096)
        except BlockingIOError:
            return
        for signum in dict.fromkeys(data):  # each signal once per wakeup, in order
            cb = self._signals.get(signum)
            if cb is not None:
                self._run(cb)

    # --- loop -----------------------------------------------------------------------------

    def _run(self, cb: Callback) -> None:
        try:
            cb()
        except Exception as exc:  # one failing callback must not stop the loop
            self.on_error(exc)

    def run_once(self, timeout: float | None = None) -> None:
        """Wait at most ``timeout`` seconds (None: until something happens), then run what is due."""
        if self._soon:
            timeout = 0
        elif self._timers:
            due = self._timers[0][0] - self.clock()
            timeout = max(0.0, due) if timeout is None else max(0.0, min(timeout, due))
        events = self._epoll.poll(-1 if timeout is None else timeout)
        for fd, mask in events:
            callbacks = self._fds.get(fd)
            if callbacks is None:
                continue
            # an error or hang-up wakes both sides (as selectors reports it): they see it on use
            if mask & ~select.EPOLLOUT and callbacks[0] is not None:
                self._run(callbacks[0])
            callbacks = self._fds.get(fd)
            if callbacks is not None and mask & ~select.EPOLLIN and callbacks[1] is not None:
                self._run(callbacks[1])
        now = self.clock()
        while self._timers and self._timers[0][0] <= now:
            _, _, t = heapq.heappop(self._timers)
            if not t.cancelled:
                self._run(t.callback)
        while self._soon:
            soon, self._soon = self._soon, []
            for cb in soon:
                self._run(cb)

    def run(self) -> None:
        """Run until :meth:`stop` is called."""
        self._stopped = False
        while not self._stopped:
            self.run_once(None)

    def stop(self) -> None:
        self._stopped = True

    def close(self) -> None:
        if self._wakeup is not None:
            try:
                signal.set_wakeup_fd(-1)
            except ValueError:  # not the main thread
                pass
            for fd in self._wakeup:
                os.close(fd)
            self._wakeup = None
        self._epoll.close()


def _noop_handler(signum: int, frame: object) -> None:
    """A Python-level handler is what makes the C handler write to the wakeup fd."""


def _default_on_error(exc: BaseException) -> None:
    import sys
    import traceback

    traceback.print_exception(exc, file=sys.stderr)
