"""The remote-command side of a streaming connection, the same for SPDY and WebSocket:
:class:`Streams` gives the exec/attach runners stdin, stdout/stderr, terminal resizes, a
``gone`` event (the client disconnected) and :meth:`Streams.finish` (status on the error
stream, then close). See :mod:`.protocol` for the wire facts.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

from ...log import get_logger
from . import protocol as p
from .spdyconn import SpdyConnection, SpdyStream, StreamReset
from .wsconn import WsConnection

log = get_logger("cri.streaming")

STDIN_QUEUE = 64
"""Chunks of client stdin held while the process does not read (then the client waits)."""


@dataclass(frozen=True)
class StreamOptions:
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool


class StreamSetupError(Exception):
    """The client did not open the streams its request asked for."""


class Streams:
    """Base: what a runner needs from the client's connection."""

    protocol: str
    opts: StreamOptions

    def __init__(self) -> None:
        self.gone = asyncio.Event()
        self.resizes: asyncio.Queue[p.TerminalSize] = asyncio.Queue()
        self._stdin: asyncio.Queue[bytes] = asyncio.Queue(maxsize=STDIN_QUEUE)   # back-pressure on the client
        self.stdin_closed = False
        self.tasks: set[asyncio.Task] = set()

    def _spawn(self, coro) -> asyncio.Task:
        t = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)
        return t

    @property
    def has_stdin(self) -> bool:
        return self.opts.stdin

    async def read_stdin(self) -> bytes:
        """Next stdin chunk from the client; ``b""`` at EOF (closed, or client gone)."""
        return await self._stdin.get()

    async def _stdin_end(self) -> None:
        """The client closed stdin: EOF after what is queued."""
        if not self.stdin_closed:
            self.stdin_closed = True
            await self._stdin.put(b"")

    def _stdin_eof(self) -> None:
        """The client is gone (or sends no stdin): EOF now."""
        if not self.stdin_closed:
            self.stdin_closed = True
            while self._stdin.full():              # the reader is gone or stalled: EOF wins
                self._stdin.get_nowait()
            self._stdin.put_nowait(b"")

    async def write(self, stream: str, data: bytes) -> None:
        raise NotImplementedError

    async def finish(self, status: dict[str, Any]) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        for t in list(self.tasks):
            t.cancel()
        for t in list(self.tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t


class SpdyStreams(Streams):
    """Remote command over a SPDY connection: the client opens one stream per
    ``streamType`` (error; stdin/stdout/stderr as requested, no stderr with a tty; resize
    with a tty on v3+) within :data:`~.protocol.STREAM_CREATION_TIMEOUT`."""

    def __init__(self, conn: SpdyConnection, protocol: str, opts: StreamOptions) -> None:
        super().__init__()
        self.conn = conn
        self.protocol = protocol
        self.opts = opts
        self.streams: dict[str, SpdyStream] = {}

    def expected(self) -> set[str]:
        want = {p.ERROR}
        if self.opts.stdin:
            want.add(p.STDIN)
        if self.opts.stdout:
            want.add(p.STDOUT)
        if self.opts.stderr and not self.opts.tty:
            want.add(p.STDERR)
        if self.opts.tty and self.protocol != p.V2:
            want.add(p.RESIZE)
        return want

    async def setup(self, timeout: float = p.STREAM_CREATION_TIMEOUT) -> None:
        """Wait for the client's streams. Raises :class:`StreamSetupError`."""
        want = self.expected()

        async def collect() -> None:
            while not want <= set(self.streams):
                st = await self.conn.accept()
                if st is None:
                    raise StreamSetupError(f"connection closed before the streams {sorted(want - set(self.streams))} "
                                           "were created")
                kind = st.header(p.HEADER_STREAM_TYPE)
                if kind not in p.CHANNELS or kind in self.streams:
                    await st.send_reset()
                    continue
                self.streams[kind] = st

        try:
            await asyncio.wait_for(collect(), timeout)
        except asyncio.TimeoutError as exc:
            raise StreamSetupError(f"timed out waiting for the client to create streams "
                                   f"{sorted(want - set(self.streams))}") from exc
        self._spawn(self._watch_gone())
        if p.STDIN in self.streams:
            self._spawn(self._read_stdin(self.streams[p.STDIN]))
        else:
            self._stdin_eof()
        if p.RESIZE in self.streams:
            self._spawn(self._read_resize(self.streams[p.RESIZE]))

    async def _watch_gone(self) -> None:
        await self.conn.done.wait()
        self.gone.set()
        self._stdin_eof()

    async def _read_stdin(self, st: SpdyStream) -> None:
        try:
            while chunk := await st.read():
                await self._stdin.put(chunk)
        except StreamReset:
            self._stdin_eof()
        await self._stdin_end()

    async def _read_resize(self, st: SpdyStream) -> None:
        dec = p.ResizeDecoder()
        with contextlib.suppress(StreamReset):
            while chunk := await st.read():
                for size in dec.feed(chunk):
                    self.resizes.put_nowait(size)

    async def write(self, stream: str, data: bytes) -> None:
        st = self.streams.get(stream)
        if st is None:
            return
        try:
            await st.write(data)
        except StreamReset:
            self.gone.set()

    async def finish(self, status: dict[str, Any]) -> None:
        for kind in (p.STDOUT, p.STDERR):
            if kind in self.streams:
                await self.streams[kind].close()
        err = self.streams.get(p.ERROR)
        if err is not None and not self.conn.closed:
            body = p.status_bytes(status, self.protocol)
            with contextlib.suppress(StreamReset):
                if body:
                    await err.write(body)
                await err.close()
        await self.aclose()
        await self.conn.close()


class WsStreams(Streams):
    """Remote command over a WebSocket: channel-prefixed messages (see :mod:`.protocol`)."""

    def __init__(self, ws: WsConnection, protocol: str, opts: StreamOptions) -> None:
        super().__init__()
        self.ws = ws
        self.protocol = protocol
        self.opts = opts
        self.base64 = protocol in (p.V4_BASE64, p.BASE64)

    async def setup(self) -> None:
        """Start reading the client's channels and tell it the streams are ready: an empty
        message on the lowest channel we write (stdout, else stderr, else error), as
        kubelet's server does."""
        if not self.opts.stdin:
            self._stdin_eof()
        self._spawn(self._read())
        first = p.STDOUT if self.opts.stdout else p.STDERR if self.opts.stderr else p.ERROR
        with contextlib.suppress(ConnectionError):
            await self.ws.send(p.ws_encode(p.CHANNELS[first], b"", base64_text=self.base64))

    async def _read(self) -> None:
        dec = p.ResizeDecoder()
        try:
            while (msg := await self.ws.recv()) is not None:
                try:
                    channel, data = p.ws_decode(msg, base64_text=self.base64)
                except ValueError:
                    continue
                if channel == p.CHANNELS[p.STDIN] and self.opts.stdin:
                    if data and not self.stdin_closed:
                        await self._stdin.put(data)
                elif channel == p.CHANNELS[p.RESIZE]:
                    for size in dec.feed(data):
                        self.resizes.put_nowait(size)
                elif channel == p.CLOSE_CHANNEL and self.protocol == p.V5 and data[:1] == bytes([0]):
                    await self._stdin_end()
        finally:
            self.gone.set()
            self._stdin_eof()

    async def write(self, stream: str, data: bytes) -> None:
        if not data:
            return
        try:
            await self.ws.send(p.ws_encode(p.CHANNELS[stream], data, base64_text=self.base64))
        except ConnectionError:
            self.gone.set()

    async def finish(self, status: dict[str, Any]) -> None:
        """The status on the error channel, then the WebSocket close (the client's stdout and
        stderr end with the connection). No v5 close signal (255) goes this way: it is
        client → server only, and client-go discards it as an unknown stream."""
        body = p.status_bytes(status, self.protocol)
        with contextlib.suppress(ConnectionError):
            if body:
                await self.ws.send(p.ws_encode(p.CHANNELS[p.ERROR], body, base64_text=self.base64))
        await self.ws.close()
        await self.aclose()


__all__ = ["SpdyStreams", "StreamOptions", "StreamSetupError", "Streams", "WsStreams"]
