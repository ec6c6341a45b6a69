"""Transfer progress for pull, push, import and export.

On a terminal: one live bar per blob (``rich``), with bytes done/total and speed. Elsewhere
(pipes, logs, tests): plain lines, one when a blob is done, and a summary::

    layer-sha256:bd42…: done 1.0 MiB
    elapsed: 0.4 s   total: 1.0 MiB (2.6 MiB/s)

Use as the ``progress`` callback of the client (``progress(key, offset, total)``); a key
with ``total == 0`` and no bytes is a phase message (``unpacking linux/amd64``) and printed
as a line of its own.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any

from .output import human_size


class PlainProgress:
    """Line-per-blob progress (see module doc)."""

    def __init__(self, out: IO[str] | None = None) -> None:
        self.out = out or sys.stdout
        self.start = time.monotonic()
        self.done: dict[str, int] = {}
        self.seen: dict[str, int] = {}
        self.bytes = 0

    def __call__(self, key: str, offset: int, total: int) -> None:
        if total == 0 and offset == 0:
            self.message(key)
            return
        prev = self.seen.get(key, 0)
        if offset > prev:
            self.bytes += offset - prev
            self.seen[key] = offset
        if total and offset >= total and key not in self.done:
            self.done[key] = total
            self._line(f"{key}: done {human_size(total)}")

    def message(self, text: str) -> None:
        self._line(text)

    def _line(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def summary(self) -> str:
        elapsed = max(time.monotonic() - self.start, 1e-6)
        return (f"elapsed: {elapsed:.1f} s   total: {human_size(self.bytes)} "
                f"({human_size(self.bytes / elapsed)}/s)")

    def close(self, summary: bool = True) -> None:
        if summary:
            self._line(self.summary())


class RichProgress(PlainProgress):
    """Live bars on a terminal."""

    def __init__(self, out: IO[str] | None = None) -> None:
        super().__init__(out)
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.console = Console(file=self.out)
        self.bars = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(binary_units=True),
                             TransferSpeedColumn(), TimeRemainingColumn(), console=self.console, transient=False)
        self.tasks: dict[str, Any] = {}
        self.bars.start()

    def __call__(self, key: str, offset: int, total: int) -> None:
        if total == 0 and offset == 0:
            self.message(key)
            return
        prev = self.seen.get(key, 0)
        if offset > prev:
            self.bytes += offset - prev
            self.seen[key] = offset
        task = self.tasks.get(key)
        if task is None:
            label = key if len(key) <= 32 else key[:29] + "…"
            task = self.tasks[key] = self.bars.add_task(label, total=total or None)
        self.bars.update(task, completed=offset)

    def message(self, text: str) -> None:
        self.bars.console.print(text, highlight=False, markup=False)

    def close(self, summary: bool = True) -> None:
        self.bars.stop()
        if summary:
            self.console.print(self.summary(), highlight=False, markup=False)


class NoProgress(PlainProgress):
    """Prints nothing."""

    def _line(self, text: str) -> None:
        return None


def make_progress(out: IO[str] | None = None, enabled: bool = True, plain: bool = True) -> PlainProgress:
    """Bars on a terminal; elsewhere plain lines (or nothing, with ``plain=False``)."""
    stream = out or sys.stdout
    tty = getattr(stream, "isatty", lambda: False)()
    if enabled and tty:
        try:
            return RichProgress(stream)
        except ImportError:  # rich missing: plain lines still work
            pass
    if not enabled or not plain:
        return NoProgress(stream)
    return PlainProgress(stream)
