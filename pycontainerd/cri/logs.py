"""Container stdio for the CRI: fifos the shim writes to, copied by the daemon into the
log file the kubelet named, in the CRI log format::

    <RFC3339Nano timestamp> <stream> <tag> <content>\\n
    2016-10-06T00:17:09.669794202Z stdout F The content of the log entry 1
    2016-10-06T00:17:09.669794202Z stdout P First line of log entry 2
    2016-10-06T00:17:09.669794202Z stdout F Second line of the log entry 2

``stream`` is ``stdout`` or ``stderr``; ``tag`` is ``F`` for a full line and ``P`` for a
partial one: a line longer than ``max_container_log_line_size`` is cut into ``P`` chunks
of exactly that size followed by an ``F`` remainder, and output that ends without a newline
when the stream closes is written as ``P`` (containerd's ``redirectLogs``). The newline
(``\\n`` or ``\\r\\n``) is not part of the content. The timestamp is the time the bytes were
read, in Go's ``time.RFC3339Nano`` layout (trailing zeros of the fraction dropped).

Fifos are opened for reading without blocking before the task is created; the shim opens
them ``O_RDWR`` and closes them once the process is gone, which is when copying ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
import time
from collections.abc import Callable
from datetime import datetime, timezone

STDOUT = "stdout"
STDERR = "stderr"
FULL = "F"
PARTIAL = "P"
CHUNK = 1 << 16
EXEC_OUTPUT_LIMIT = 16 << 20
"""ExecSync keeps at most this much of each stream (CVE-2022-1708)."""


def timestamp(ns: int | None = None, tz: timezone | None = None) -> str:
    """``ns`` (default: now) formatted as Go's ``time.RFC3339Nano`` in local time (``tz``
    overrides): ``2016-10-06T00:17:09.669794202Z``, ``…T02:17:09.5+02:00``."""
    if ns is None:
        ns = time.time_ns()
    secs, frac = divmod(ns, 1_000_000_000)
    dt = datetime.fromtimestamp(secs, tz or timezone.utc)
    if tz is None:
        dt = dt.astimezone()
    out = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        out += "." + f"{frac:09d}".rstrip("0")
    off = dt.utcoffset()
    if not off:
        return out + "Z"
    minutes = int(off.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(minutes)
    return f"{out}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def format_entry(ts: str, stream: str, tag: str, content: bytes) -> bytes:
    """One CRI log line (newline included)."""
    return b"%s %s %s %s\n" % (ts.encode(), stream.encode(), tag.encode(), content)


def parse_entry(line: bytes) -> tuple[str, str, str, bytes]:
    """``(timestamp, stream, tag, content)`` of one CRI log line (the kubelet's parser)."""
    line = line.rstrip(b"\n")
    ts, stream, tag, content = (line.split(b" ", 3) + [b""] * 4)[:4]
    return ts.decode(), stream.decode(), tag.decode(), content


class LineSplitter:
    """Cuts a byte stream into ``(tag, content)`` log entries (see module doc).

    ``max_len <= 0`` means no limit.
    """

    def __init__(self, max_len: int = 16384) -> None:
        self.max_len = max_len
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[str, bytes]]:
        out: list[tuple[str, bytes]] = []
        self._buf += data
        while True:
            nl = self._buf.find(b"\n")
            if nl < 0:
                break
            line = bytes(self._buf[:nl])
            del self._buf[: nl + 1]
            if line.endswith(b"\r"):
                line = line[:-1]
            out.extend(self._split(line, final=True))
        if self.max_len > 0:
            # a lone "\r" past the limit may be the start of "\r\n": not content, keep it back
            while len(self._buf) > self.max_len and self._buf[self.max_len:] != b"\r":
                out.append((PARTIAL, bytes(self._buf[: self.max_len])))
                del self._buf[: self.max_len]
        return out

    def _split(self, line: bytes, final: bool) -> list[tuple[str, bytes]]:
        out = []
        if self.max_len > 0:
            while len(line) > self.max_len:
                out.append((PARTIAL, line[: self.max_len]))
                line = line[self.max_len:]
        out.append((FULL if final else PARTIAL, line))
        return out

    def close(self) -> list[tuple[str, bytes]]:
        """What is left at end of stream: a partial line (``P``), or nothing."""
        if not self._buf:
            return []
        line = bytes(self._buf)
        self._buf.clear()
        return self._split(line, final=False)


class LogFile:
    """The container's log file, opened for appending; :meth:`reopen` after rotation."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd: int | None = None
        self.open()

    def open(self) -> None:
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)

    def write(self, data: bytes) -> None:
        if self.fd is None:
            return
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]

    def reopen(self) -> None:
        """Close and open ``path`` again (the kubelet renamed the old file)."""
        self.close()
        self.open()

    def close(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None


def make_fifo(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    os.mkfifo(path, 0o600)


async def _read_fifo(fd: int, on_data: Callable[[bytes], None]) -> None:
    """Read ``fd`` (non-blocking) until EOF, handing each chunk to ``on_data``."""
    loop = asyncio.get_running_loop()
    ready = asyncio.Event()
    loop.add_reader(fd, ready.set)
    try:
        while True:
            await ready.wait()
            ready.clear()
            while True:
                try:
                    chunk = os.read(fd, CHUNK)
                except BlockingIOError:
                    break
                except OSError as exc:
                    if exc.errno == errno.EIO:
                        return
                    raise
                if not chunk:
                    return
                on_data(chunk)
    finally:
        loop.remove_reader(fd)


class _Copy:
    """One fifo being read into a sink until the writer side closes."""

    def __init__(self, path: str, on_data: Callable[[bytes], None], on_eof: Callable[[], None] = lambda: None):
        self.path = path
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        self._on_eof = on_eof
        self.task = asyncio.get_running_loop().create_task(self._run(on_data))

    async def _run(self, on_data: Callable[[bytes], None]) -> None:
        try:
            await _read_fifo(self.fd, on_data)
            self._on_eof()
        finally:
            with contextlib.suppress(OSError):
                os.close(self.fd)


class ContainerIO:
    """The stdout/stderr fifos of a container and their copy into the CRI log.

    ``directory`` holds the fifos (``stdout``, and ``stderr`` unless ``tty``: a terminal
    merges both into stdout). With no ``log_path`` the output is read and dropped.
    """

    def __init__(self, directory: str, *, tty: bool, log_path: str, max_line: int) -> None:
        self.directory = directory
        self.tty = tty
        self.log_path = log_path
        self.max_line = max_line
        self.stdout = os.path.join(directory, "stdout")
        self.stderr = "" if tty else os.path.join(directory, "stderr")
        self.log: LogFile | None = None
        self._copies: list[_Copy] = []
        self.listeners: set[Callable[[str, bytes], None]] = set()   # attached clients: (stream, chunk)

    def create_fifos(self) -> None:
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        make_fifo(self.stdout)
        if self.stderr:
            make_fifo(self.stderr)

    def start(self) -> None:
        """Open the log and the fifos and start copying (the fifos must exist)."""
        if self.log_path:
            self.log = LogFile(self.log_path)
        for stream, path in ((STDOUT, self.stdout), (STDERR, self.stderr)):
            if path:
                self._copies.append(self._copy(stream, path))

    def _copy(self, stream: str, path: str) -> _Copy:
        splitter = LineSplitter(self.max_line)

        def emit(entries: list[tuple[str, bytes]]) -> None:
            if self.log is None or not entries:
                return
            ts = timestamp()
            self.log.write(b"".join(format_entry(ts, stream, tag, content) for tag, content in entries))

        def take(data: bytes) -> None:
            for listener in list(self.listeners):
                listener(stream, data)
            emit(splitter.feed(data))

        return _Copy(path, take, lambda: emit(splitter.close()))

    def reopen_log(self) -> None:
        if self.log is not None:
            self.log.reopen()
        elif self.log_path:
            self.log = LogFile(self.log_path)

    async def wait(self, timeout: float | None = None) -> bool:
        """Wait until every stream reached EOF; False on timeout."""
        tasks = [c.task for c in self._copies]
        if not tasks:
            return True
        done, pending = await asyncio.wait(tasks, timeout=timeout)
        return not pending

    async def close(self) -> None:
        """Stop copying (what is unread stays in the fifo) and close the log."""
        for c in self._copies:
            c.task.cancel()
        for c in self._copies:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await c.task
        self._copies.clear()
        if self.log is not None:
            self.log.close()
            self.log = None

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


class ExecIO:
    """stdout/stderr fifos of an ExecSync process, captured in memory up to
    :data:`EXEC_OUTPUT_LIMIT` bytes each (the rest is read and dropped)."""

    def __init__(self, directory: str, exec_id: str, limit: int = EXEC_OUTPUT_LIMIT) -> None:
        self.directory = directory
        self.stdout = os.path.join(directory, f"{exec_id}-stdout")
        self.stderr = os.path.join(directory, f"{exec_id}-stderr")
        self.limit = limit
        self.out = bytearray()
        self.err = bytearray()
        self._copies: list[_Copy] = []

    def start(self) -> None:
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        for path, buf in ((self.stdout, self.out), (self.stderr, self.err)):
            make_fifo(path)
            self._copies.append(_Copy(path, self._sink(buf)))

    def _sink(self, buf: bytearray) -> Callable[[bytes], None]:
        def take(data: bytes) -> None:
            room = self.limit - len(buf)
            if room > 0:
                buf.extend(data[:room])
        return take

    async def wait(self, timeout: float | None = None) -> bool:
        tasks = [c.task for c in self._copies]
        if not tasks:
            return True
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        return not pending

    async def close(self) -> None:
        for c in self._copies:
            c.task.cancel()
        for c in self._copies:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await c.task
        self._copies.clear()
        for path in (self.stdout, self.stderr):
            with contextlib.suppress(OSError):
                os.unlink(path)
