"""Task and exec stdio, client side, as containerd's ``cio`` package does it.

A task's stdio is named to the daemon by three strings and a terminal flag
(:class:`IOConfig`): fifo paths, a ``file://`` or ``binary://`` URI, or empty strings
(``/dev/null``). The *client* makes the fifos and copies between them and the caller's
streams; the daemon's shim opens the other ends.

A **creator** — ``async creator(process_id) -> IO`` — is what
:meth:`AsyncContainer.new_task <pycontainerd.client.containers.AsyncContainer.new_task>`
and :meth:`AsyncTask.exec <pycontainerd.client.tasks.AsyncTask.exec>` take as ``stdio=``:

* :func:`new_creator` (containerd's ``cio.NewCreator(cio.WithStreams(...))``): fifos
  ``<id>-stdin``, ``<id>-stdout``, ``<id>-stderr`` in a fresh directory under
  ``fifo_dir`` (default ``/run/pycontainerd/fifo``), copied to/from the given streams. A
  stream that is ``None`` gets no fifo (the process sees ``/dev/null``). With
  ``terminal=True`` there is no stderr (a tty has one output);
* :func:`with_stdio` — this process's own stdin, stdout and stderr (``cio.WithStdio``);
* :func:`capture` — collect output in memory (``io.stdout_bytes``), optional stdin bytes;
* :func:`log_file` / :func:`log_uri` / :func:`binary` — the shim writes stdout and stderr
  itself (``cio.LogFile``, ``cio.LogURI``, ``cio.BinaryIO``); nothing to copy;
* :func:`null_io` — no stdio at all (``cio.NullIO``).

An **attach** — ``async attach(config) -> IO`` — reconnects to the fifos of a running
process (``cio.NewAttach``): :func:`new_attach`.

Streams: a sink is a binary file object (``sys.stdout.buffer``), an ``int`` fd, an
``io.BytesIO``/``bytearray`` or a callable taking ``bytes``; a source is ``bytes``, a
binary file object or an ``int`` fd. Pipes and ttys are read when the event loop says they
are readable; regular files in a worker thread.

When the stdin source ends, the fifo is closed and the process's stdin is closed through
the daemon (``CloseIO``), as ``ctr`` does — so ``cat`` in a container sees EOF.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import io
import os
import secrets
import select
import shutil
import sys
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

DEFAULT_FIFO_DIR = "/run/pycontainerd/fifo"
"""Where :func:`new_creator` makes its fifo directories (containerd: ``/run/containerd/fifo``)."""

CHUNK = 1 << 15


@dataclass(frozen=True)
class IOConfig:
    """What the daemon is told: ``stdin``/``stdout``/``stderr`` fifo paths or URIs
    (``""``: none), and whether the process has a terminal."""

    stdin: str = ""
    stdout: str = ""
    stderr: str = ""
    terminal: bool = False


class IO:
    """The client side of one process's stdio (containerd's ``cio.IO``).

    ``config`` goes to the daemon; :meth:`wait` returns once every output has been copied
    to its sink (the shim closed the fifo); :meth:`cancel` stops copies that never
    started; :meth:`close` stops everything and removes the fifos.
    """

    def __init__(self, config: IOConfig) -> None:
        self.config = config
        self._closer: Callable[[], Awaitable[None]] | None = None
        self._closer_set = asyncio.Event()

    def set_stdin_closer(self, closer: Callable[[], Awaitable[None]]) -> None:
        """Called by the task once it exists: how to close the process's stdin."""
        self._closer = closer
        self._closer_set.set()

    async def wait(self) -> None:
        return None

    def cancel(self) -> None:
        return None

    async def close(self) -> None:
        return None


Creator = Callable[[str], Awaitable[IO]]
"""``async creator(process_id) -> IO``."""
Attach = Callable[[IOConfig], Awaitable[IO]]
"""``async attach(config) -> IO``: reconnect to the stdio ``config`` names."""


# --- sinks and sources --------------------------------------------------------------------


def _writer(sink: Any) -> Callable[[bytes], Awaitable[None]]:
    """An ``async write(data)`` for a sink (see module doc)."""
    if isinstance(sink, (io.BytesIO, bytearray)):
        async def write_mem(data: bytes) -> None:
            if isinstance(sink, bytearray):
                sink.extend(data)
            else:
                sink.write(data)

        return write_mem
    if isinstance(sink, int):
        def write_fd(data: bytes) -> None:
            view = memoryview(data)
            while view:
                n = os.write(sink, view)
                view = view[n:]

        async def write_fd_async(data: bytes) -> None:
            await asyncio.to_thread(write_fd, data)

        return write_fd_async
    if hasattr(sink, "write"):
        def write_file(data: bytes) -> None:
            sink.write(data)
            flush = getattr(sink, "flush", None)
            if flush is not None:
                flush()

        async def write_file_async(data: bytes) -> None:
            await asyncio.to_thread(write_file, data)

        return write_file_async
    if callable(sink):
        async def write_call(data: bytes) -> None:
            result = sink(data)
            if asyncio.iscoroutine(result):
                await result

        return write_call
    raise TypeError(f"not a stdio sink: {sink!r} (want a binary file, an fd, io.BytesIO or a callable)")


async def _read_source(source: Any):
    """Yield chunks of ``source`` until it ends (see module doc)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        if source:
            yield bytes(source)
        return
    fd: int | None = None
    if isinstance(source, int):
        fd = source
    else:
        try:
            fd = source.fileno()
        except (AttributeError, OSError, ValueError):
            fd = None
    if fd is None:
        read = getattr(source, "read1", None) or source.read
        while True:
            chunk = await asyncio.to_thread(read, CHUNK)
            if not chunk:
                return
            yield chunk
    loop = asyncio.get_running_loop()
    ready = asyncio.Event()
    try:
        loop.add_reader(fd, ready.set)
    except (PermissionError, OSError, ValueError):
        # a regular file (epoll refuses it): reads never block for long
        while True:
            chunk = await asyncio.to_thread(os.read, fd, CHUNK)
            if not chunk:
                return
            yield chunk
    try:
        while True:
            await ready.wait()
            ready.clear()
            # the fd may be blocking (a terminal we share with our parent): the reader
            # callback can fire after we drained it, so check before reading
            if not select.select([fd], [], [], 0)[0]:
                continue
            try:
                chunk = os.read(fd, CHUNK)
            except BlockingIOError:
                continue
            except OSError as exc:
                if exc.errno == errno.EIO:  # a tty that went away
                    return
                raise
            if not chunk:
                return
            yield chunk
    finally:
        loop.remove_reader(fd)


# --- fifo copying -------------------------------------------------------------------------


class _OutputCopy:
    """fifo → sink. The fifo is opened for reading without blocking and read whenever the
    loop says so; it ends when the shim (the last writer) closes its end."""

    def __init__(self, path: str, sink: Any) -> None:
        self.path = path
        self.write = _writer(sink)
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        self.connected = False
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        ready = asyncio.Event()
        loop.add_reader(self.fd, ready.set)
        try:
            while True:
                await ready.wait()
                ready.clear()
                self.connected = True
                try:
                    chunk = os.read(self.fd, CHUNK)
                except BlockingIOError:
                    continue
                if not chunk:
                    return
                await self.write(chunk)
        finally:
            loop.remove_reader(self.fd)
            os.close(self.fd)


class _InputCopy:
    """source → stdin fifo, then close the fifo and the process's stdin.

    The fifo is opened read-write, which never blocks and lets us queue input before the
    shim opens its end; writes wait for room in the pipe. Our end stays open until the
    process has started (else input written before the shim opened the fifo would be
    dropped with the pipe)."""

    def __init__(self, path: str, source: Any, owner: IO) -> None:
        self.path = path
        self.source = source
        self.owner = owner
        self.fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _write_all(self, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.fd, view)
                view = view[n:]
            except BlockingIOError:
                room = asyncio.Event()
                loop.add_writer(self.fd, room.set)
                try:
                    await room.wait()
                finally:
                    loop.remove_writer(self.fd)

    async def _run(self) -> None:
        try:
            async for chunk in _read_source(self.source):
                await self._write_all(chunk)
            # Our end keeps what we wrote alive until the process exists and the shim has
            # its own end open: close only once the process started.
            await self.owner._closer_set.wait()
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            fd, self.fd = self.fd, -1
            if fd >= 0:
                os.close(fd)
        await self.owner._closer_set.wait()
        if self.owner._closer is not None:
            with contextlib.suppress(Exception):
                await self.owner._closer()


class FifoIO(IO):
    """Fifos in ``directory`` copied to/from streams (see :func:`new_creator`)."""

    def __init__(self, config: IOConfig, directory: str | None, stdin: Any = None, stdout: Any = None,
                 stderr: Any = None) -> None:
        super().__init__(config)
        self.directory = directory
        self._outputs: list[_OutputCopy] = []
        self._input: _InputCopy | None = None
        try:
            if config.stdout and stdout is not None:
                self._outputs.append(_OutputCopy(config.stdout, stdout))
            if config.stderr and stderr is not None:
                self._outputs.append(_OutputCopy(config.stderr, stderr))
            if config.stdin and stdin is not None:
                self._input = _InputCopy(config.stdin, stdin, self)
        except BaseException:
            self._abort()
            raise

    def _abort(self) -> None:
        for out in self._outputs:
            out.task.cancel()
        if self._input is not None:
            self._input.task.cancel()
        self._remove()

    def _remove(self) -> None:
        if self.directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    async def wait(self) -> None:
        """Until every output reached EOF (or was cancelled)."""
        for out in self._outputs:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(out.task)

    def cancel(self) -> None:
        """Stop output copies that never got a writer (the process never started)."""
        for out in self._outputs:
            if not out.connected:
                out.task.cancel()

    async def close(self) -> None:
        tasks = [out.task for out in self._outputs]
        if self._input is not None:
            tasks.append(self._input.task)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._remove()

    @property
    def stdout_bytes(self) -> bytes:
        """What :func:`capture` collected from stdout."""
        return bytes(getattr(self, "_capture_out", b""))

    @property
    def stderr_bytes(self) -> bytes:
        return bytes(getattr(self, "_capture_err", b""))


def _fifo_base(fifo_dir: str | None) -> str:
    base = fifo_dir or DEFAULT_FIFO_DIR
    try:
        os.makedirs(base, mode=0o700, exist_ok=True)
    except PermissionError:
        if fifo_dir:
            raise
        import tempfile

        base = os.path.join(tempfile.gettempdir(), "pycontainerd-fifo")
        os.makedirs(base, mode=0o700, exist_ok=True)
    return base


def new_fifo_set(process_id: str, *, stdin: bool, stdout: bool, stderr: bool, terminal: bool = False,
                 fifo_dir: str | None = None) -> tuple[IOConfig, str]:
    """Make a fresh directory under ``fifo_dir`` with the fifos asked for; returns the
    config and the directory (remove it when done)."""
    base = _fifo_base(fifo_dir)
    directory = os.path.join(base, secrets.token_hex(8))
    os.mkdir(directory, 0o700)
    paths: dict[str, str] = {}
    try:
        for name, wanted in (("stdin", stdin), ("stdout", stdout), ("stderr", stderr and not terminal)):
            if wanted:
                path = os.path.join(directory, f"{process_id}-{name}")
                os.mkfifo(path, 0o700)
                paths[name] = path
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return IOConfig(paths.get("stdin", ""), paths.get("stdout", ""), paths.get("stderr", ""), terminal), directory


def new_creator(stdin: Any = None, stdout: Any = None, stderr: Any = None, *, terminal: bool = False,
                fifo_dir: str | None = None) -> Creator:
    """Fifos copied to/from these streams (see module doc)."""

    async def create(process_id: str) -> IO:
        config, directory = new_fifo_set(process_id, stdin=stdin is not None, stdout=stdout is not None,
                                          stderr=stderr is not None, terminal=terminal, fifo_dir=fifo_dir)
        return FifoIO(config, directory, stdin, stdout, None if terminal else stderr)

    return create


def with_stdio(*, terminal: bool = False, stdin: bool = True, fifo_dir: str | None = None) -> Creator:
    """This process's stdin, stdout and stderr (containerd's ``cio.WithStdio``); with
    ``stdin=False`` the process gets ``/dev/null`` as stdin."""
    return new_creator(sys.stdin.buffer if stdin else None, sys.stdout.buffer, sys.stderr.buffer,
                       terminal=terminal, fifo_dir=fifo_dir)


def capture(stdin: bytes | None = None, *, terminal: bool = False, fifo_dir: str | None = None) -> Creator:
    """Collect stdout and stderr in memory: after :meth:`AsyncTask.wait`, read
    ``task.io.stdout_bytes`` and ``task.io.stderr_bytes``. ``stdin`` is fed, then closed."""

    async def create(process_id: str) -> IO:
        out, err = bytearray(), bytearray()
        config, directory = new_fifo_set(process_id, stdin=stdin is not None, stdout=True, stderr=True,
                                          terminal=terminal, fifo_dir=fifo_dir)
        fio = FifoIO(config, directory, stdin, out, None if terminal else err)
        fio._capture_out, fio._capture_err = out, err  # type: ignore[attr-defined]
        return fio

    return create


async def null_io(process_id: str) -> IO:
    """No stdio: the process reads and writes ``/dev/null`` (containerd's ``cio.NullIO``)."""
    return IO(IOConfig())


def log_uri(uri: str, *, stdout_only: bool = False) -> Creator:
    """The shim sends stdout and stderr to ``uri`` (``file:///abs/path`` or
    ``binary:///abs/path?key=value``); containerd's ``cio.LogURI``."""
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme not in ("file", "binary", "fifo") or parsed.netloc or not parsed.path.startswith("/"):
        from ..errdefs import InvalidArgument

        raise InvalidArgument(f"log uri {uri!r}: want file:///abs/path or binary:///abs/path")

    async def create(process_id: str) -> IO:
        return IO(IOConfig("", uri, "" if stdout_only else uri))

    return create


def log_file(path: str | os.PathLike[str]) -> Creator:
    """Append stdout and stderr to the file at ``path`` (containerd's ``cio.LogFile``)."""
    p = os.path.abspath(os.fspath(path))
    return log_uri("file://" + urllib.parse.quote(p))


def binary(path: str, args: dict[str, str] | None = None) -> Creator:
    """A logging binary gets the output (containerd's ``cio.BinaryIO``)."""
    query = urllib.parse.urlencode(args or {})
    return log_uri("binary://" + urllib.parse.quote(os.path.abspath(path)) + ("?" + query if query else ""))


def new_attach(stdin: Any = None, stdout: Any = None, stderr: Any = None) -> Attach:
    """Reconnect to a running process's fifos (``cio.NewAttach``)."""

    async def attach(config: IOConfig) -> IO:
        def is_fifo(path: str) -> bool:
            import stat

            try:
                return bool(path) and stat.S_ISFIFO(os.stat(path).st_mode)
            except OSError:
                return False

        usable = IOConfig(config.stdin if is_fifo(config.stdin) else "",
                          config.stdout if is_fifo(config.stdout) else "",
                          config.stderr if is_fifo(config.stderr) else "", config.terminal)
        return FifoIO(usable, None, stdin, stdout, stderr)

    return attach


def remove_fifos(config: IOConfig, fifo_dir: str | None = None) -> None:
    """Remove the fifos of a finished process and their directory when it was made by
    :func:`new_fifo_set` (under ``fifo_dir``) and is now empty. URIs and other paths are left
    alone."""
    base = os.path.realpath(fifo_dir or DEFAULT_FIFO_DIR)
    dirs = set()
    for path in (config.stdin, config.stdout, config.stderr):
        if not path or "://" in path:
            continue
        directory = os.path.dirname(os.path.realpath(path))
        if os.path.dirname(directory) != base:
            continue
        with contextlib.suppress(OSError):
            os.unlink(path)
        dirs.add(directory)
    for d in dirs:
        with contextlib.suppress(OSError):
            os.rmdir(d)
