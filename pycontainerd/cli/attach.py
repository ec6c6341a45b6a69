"""Running a process in the foreground, as ``ctr run``/``tasks start``/``tasks exec`` do:
the caller's stdio wired to the process (through fifos), the terminal in raw mode and
resized with the window for ``-t``, signals forwarded to the process otherwise, and the
process's exit code handed back.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import termios
import tty as tty_mod
from collections.abc import AsyncIterator

from ..client import cio
from ..client.tasks import AsyncProcess
from ..errdefs import NotFound

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
"""Signals ``pyctr`` passes on to a process it runs in the foreground without a tty."""


def stdio_creator(*, terminal: bool, null_io: bool = False, log_uri: str | None = None,
                  fifo_dir: str | None = None, stdin: bool = True) -> cio.Creator:
    """The creator for the chosen flags: null IO, a log URI (``file://``/``binary://``, or a
    plain path meaning a file), or this process's stdio through fifos."""
    if null_io:
        return cio.null_io
    if log_uri:
        if "://" not in log_uri:
            return cio.log_file(log_uri)
        return cio.log_uri(log_uri)
    return cio.new_creator(sys.stdin.buffer if stdin else None, sys.stdout.buffer,
                           None if terminal else sys.stderr.buffer, terminal=terminal, fifo_dir=fifo_dir)


@contextlib.contextmanager
def raw_terminal(enabled: bool):
    """Put our stdin terminal in raw mode while the block runs (when it is a terminal)."""
    fd = sys.stdin.fileno() if enabled else -1
    if fd < 0 or not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    try:
        tty_mod.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _terminal_size() -> tuple[int, int] | None:
    for stream in (sys.stdout, sys.stdin, sys.stderr):
        try:
            size = os.get_terminal_size(stream.fileno())
            return size.columns, size.lines
        except (OSError, ValueError, AttributeError):
            continue
    return None


@contextlib.asynccontextmanager
async def foreground(process: AsyncProcess, *, terminal: bool) -> AsyncIterator[None]:
    """While the block runs: with a terminal, keep the process's pty the size of ours
    (resized on ``SIGWINCH``); without one, forward :data:`FORWARDED` signals to it."""
    loop = asyncio.get_running_loop()
    installed: list[int] = []
    pending: set[asyncio.Task] = set()

    def later(coro) -> None:
        t = loop.create_task(coro)
        pending.add(t)
        t.add_done_callback(pending.discard)

    async def resize() -> None:
        size = _terminal_size()
        if size is not None:
            with contextlib.suppress(Exception):
                await process.resize(*size)

    async def forward(sig: int) -> None:
        with contextlib.suppress(NotFound, Exception):
            await process.kill(sig)

    if terminal:
        await resize()
        loop.add_signal_handler(signal.SIGWINCH, lambda: later(resize()))
        installed.append(signal.SIGWINCH)
    else:
        for sig in FORWARDED:
            loop.add_signal_handler(sig, lambda s=sig: later(forward(s)))
            installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        for t in list(pending):
            t.cancel()
