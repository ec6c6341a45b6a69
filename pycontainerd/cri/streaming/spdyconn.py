"""A SPDY/3.1 connection over asyncio streams (both ends: the server's and our test
client's), built on the sans-IO codec in :mod:`.spdy`.

Streams are opened by SYN_STREAM; the side that accepts answers SYN_REPLY at once (what
the Kubernetes stream servers and clients expect: a client waits for the reply before it
writes). Each direction of a stream ends with FIN (an empty DATA frame with FIN, or FIN on
the SYN); RST_STREAM ends both. PINGs from the peer are echoed.

Flow control (3.1): 64 KiB initial windows per stream and for the session. We send
WINDOW_UPDATE for what the application has read, so a peer that honours windows keeps
sending. We honour the peer's windows only once it shows it does flow control (it sent a
WINDOW_UPDATE or an INITIAL_WINDOW_SIZE setting): Go's spdystream, which kubelet, client-go
and containerd use, neither sends nor reads WINDOW_UPDATE, so enforcing windows against it
would stall every stream after 64 KiB.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

from . import spdy

CHUNK = 32 * 1024
MAX_BUFFERED = 16 << 20
"""Bytes received on one stream and not read yet beyond which the stream is reset
(FLOW_CONTROL_ERROR): the bound for peers that ignore our windows."""


class StreamReset(ConnectionError):
    """The stream was reset by the peer, or the connection ended under it."""


class SpdyStream:
    """One SPDY stream: ``headers`` are the SYN's; :meth:`read` returns ``b""`` at the
    peer's FIN; :meth:`write` then :meth:`close` (our FIN)."""

    def __init__(self, conn: SpdyConnection, stream_id: int, headers: spdy.Headers) -> None:
        self.conn = conn
        self.id = stream_id
        self.headers = headers
        self.reply_headers: spdy.Headers = {}
        self.replied = asyncio.Event()
        self._chunks: deque[bytes] = deque()
        self.buffered = 0
        self._readable = asyncio.Event()
        self.remote_closed = False
        self.local_closed = False
        self.reset = False
        self.send_window = conn.initial_send_window
        self._window_open = asyncio.Event()
        self._window_open.set()
        self._unacked = 0

    def header(self, name: str, default: str = "") -> str:
        values = self.headers.get(name.lower())
        return values[0] if values else default

    # -- receiving -----------------------------------------------------------------------

    def _feed(self, data: bytes, fin: bool) -> None:
        if data:
            self._chunks.append(data)
            self.buffered += len(data)
        if fin:
            self.remote_closed = True
        self._readable.set()

    async def read(self) -> bytes:
        """The next chunk the peer sent; ``b""`` once it closed its side. Raises
        :class:`StreamReset` after a reset."""
        while not self._chunks:
            if self.reset:
                raise StreamReset(f"stream {self.id} was reset")
            if self.remote_closed:
                return b""
            self._readable.clear()
            await self._readable.wait()
        data = self._chunks.popleft()
        self.buffered -= len(data)
        self._unacked += len(data)
        await self.conn._consumed(self, len(data))
        return data

    async def read_all(self) -> bytes:
        out = bytearray()
        while chunk := await self.read():
            out += chunk
        return bytes(out)

    # -- sending -------------------------------------------------------------------------

    async def write(self, data: bytes) -> None:
        """Send ``data`` (split into frames; waits for window when the peer does flow
        control). Raises :class:`StreamReset` when the stream or connection is gone."""
        if not self.conn.peer_flow_control and not self.local_closed and not self.reset:
            # no windows to respect: every frame in one write (one drain)
            frames = [spdy.DataFrame(self.id, data[i:i + CHUNK]) for i in range(0, len(data), CHUNK)]
            try:
                await self.conn.send_many(frames)
            except ConnectionError as exc:
                raise StreamReset(f"stream {self.id} is gone: {exc}") from exc
            return
        view = memoryview(data)
        while view:
            if self.reset or self.conn.closed:
                raise StreamReset(f"stream {self.id} is gone")
            if self.local_closed:
                raise StreamReset(f"stream {self.id} is closed for writing")
            n = min(len(view), CHUNK)
            if self.conn.peer_flow_control:
                while min(self.send_window, self.conn.session_send_window) <= 0:
                    if self.reset or self.conn.closed:
                        raise StreamReset(f"stream {self.id} is gone")
                    self._window_open.clear()
                    await self._window_open.wait()
                n = min(n, self.send_window, self.conn.session_send_window)
            self.send_window -= n
            self.conn.session_send_window -= n
            try:
                await self.conn.send(spdy.DataFrame(self.id, bytes(view[:n])))
            except ConnectionError as exc:
                raise StreamReset(f"stream {self.id} is gone: {exc}") from exc
            view = view[n:]

    async def close(self) -> None:
        """Half-close: FIN on our side (idempotent, quiet when the connection is gone)."""
        if self.local_closed or self.reset:
            return
        self.local_closed = True
        with contextlib.suppress(ConnectionError):
            await self.conn.send(spdy.DataFrame(self.id, b"", spdy.FLAG_FIN))
        self.conn._maybe_forget(self)

    async def send_reset(self, status: int = spdy.CANCEL) -> None:
        if self.reset:
            return
        self._on_reset()
        with contextlib.suppress(ConnectionError):
            await self.conn.send(spdy.RstStream(self.id, status))

    def _on_reset(self) -> None:
        self.reset = True
        self._readable.set()
        self._window_open.set()
        self.conn.streams.pop(self.id, None)


class SpdyConnection:
    """A SPDY/3.1 session on ``reader``/``writer`` (already upgraded).

    ``server``: stream ids we open are even (odd for a client). Streams the peer opens
    arrive through :meth:`accept`; :meth:`run` reads frames until the peer disconnects
    (then :attr:`done` is set and every stream is reset).
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, server: bool,
                 max_frame: int = spdy.MAX_LENGTH) -> None:
        self.reader = reader
        self.writer = writer
        self.server = server
        self.send_codec = spdy.HeaderCodec()
        self.frames = spdy.FrameReader(spdy.HeaderCodec(), max_frame)
        self.streams: dict[int, SpdyStream] = {}
        self.incoming: asyncio.Queue[SpdyStream | None] = asyncio.Queue()
        self.next_id = 2 if server else 1
        self.last_received = 0
        self.closed = False
        self.done = asyncio.Event()
        self.peer_flow_control = False
        self.initial_send_window = spdy.DEFAULT_WINDOW
        self.session_send_window = spdy.DEFAULT_WINDOW
        self._session_unacked = 0
        self._write_lock = asyncio.Lock()
        self.error: str = ""

    # -- writing -------------------------------------------------------------------------

    async def send(self, frame: spdy.Frame) -> None:
        if self.closed:
            raise ConnectionResetError("SPDY connection is closed")
        async with self._write_lock:
            try:
                self.writer.write(spdy.encode(frame, self.send_codec))
                await self.writer.drain()
            except (ConnectionError, RuntimeError) as exc:
                self._lost(str(exc))
                raise ConnectionResetError(str(exc)) from exc

    async def send_many(self, frames: list[spdy.Frame]) -> None:
        if self.closed:
            raise ConnectionResetError("SPDY connection is closed")
        async with self._write_lock:
            try:
                self.writer.write(b"".join(spdy.encode(f, self.send_codec) for f in frames))
                await self.writer.drain()
            except (ConnectionError, RuntimeError) as exc:
                self._lost(str(exc))
                raise ConnectionResetError(str(exc)) from exc

    async def open_stream(self, headers: spdy.Headers, *, fin: bool = False, wait_reply: bool = True) -> SpdyStream:
        """Open a stream (the client's side); waits for the peer's SYN_REPLY."""
        sid = self.next_id
        self.next_id += 2
        st = SpdyStream(self, sid, headers)
        self.streams[sid] = st
        if fin:
            st.local_closed = True
        await self.send(spdy.SynStream(sid, headers, spdy.FLAG_FIN if fin else 0))
        if wait_reply:
            waiter = asyncio.ensure_future(st.replied.wait())
            gone = asyncio.ensure_future(self.done.wait())
            try:
                await asyncio.wait({waiter, gone}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
                gone.cancel()
            if not st.replied.is_set():
                raise StreamReset(f"no reply to stream {sid}: {self.error or 'connection closed'}")
        return st

    async def accept(self) -> SpdyStream | None:
        """The next stream the peer opened (already replied to); None once the connection
        is gone."""
        if self.done.is_set() and self.incoming.empty():
            return None
        return await self.incoming.get()

    async def goaway(self, status: int = 0) -> None:
        with contextlib.suppress(ConnectionError):
            await self.send(spdy.GoAway(self.last_received, status))

    async def close(self) -> None:
        """Close the transport (after a GOAWAY if still possible)."""
        if not self.closed:
            await self.goaway()
        self._lost("closed locally")
        with contextlib.suppress(Exception):
            self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()

    # -- reading -------------------------------------------------------------------------

    async def run(self) -> None:
        """Read and dispatch frames until EOF or a protocol error (then the connection is
        closed and every stream reset)."""
        try:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    self._lost("peer closed the connection")
                    return
                for frame in self.frames.feed(data):
                    await self._dispatch(frame)
        except spdy.SpdyProtocolError as exc:
            self.error = str(exc)
            await self.goaway(1)
            self._lost(str(exc))
        except (ConnectionError, OSError) as exc:
            self._lost(str(exc))
        finally:
            self._lost("connection closed")

    def _lost(self, why: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.error = self.error or why
        for st in list(self.streams.values()):
            st._on_reset()
        self.incoming.put_nowait(None)
        self.done.set()
        with contextlib.suppress(Exception):
            self.writer.close()

    async def _dispatch(self, f: spdy.Frame) -> None:
        if isinstance(f, spdy.DataFrame):
            st = self.streams.get(f.stream_id)
            if st is None:
                return                                  # a stream we already forgot
            st._feed(f.data, f.fin)
            if st.buffered > MAX_BUFFERED:
                await st.send_reset(spdy.FLOW_CONTROL_ERROR)
            elif f.fin:
                self._maybe_forget(st)
        elif isinstance(f, spdy.SynStream):
            if f.stream_id in self.streams or f.stream_id % 2 == (0 if self.server else 1) or f.stream_id == 0:
                await self.send(spdy.RstStream(f.stream_id, spdy.PROTOCOL_ERROR))
                return
            self.last_received = max(self.last_received, f.stream_id)
            st = SpdyStream(self, f.stream_id, f.headers)
            self.streams[f.stream_id] = st
            if f.flags & spdy.FLAG_UNIDIRECTIONAL:
                st.local_closed = True
            if f.fin:
                st.remote_closed = True
            await self.send(spdy.SynReply(f.stream_id, {}))
            st.replied.set()
            self.incoming.put_nowait(st)
        elif isinstance(f, spdy.SynReply):
            st = self.streams.get(f.stream_id)
            if st is not None:
                st.reply_headers = f.headers
                st.replied.set()
                if f.fin:
                    st._feed(b"", True)
        elif isinstance(f, spdy.HeadersFrame):
            st = self.streams.get(f.stream_id)
            if st is not None and f.fin:
                st._feed(b"", True)
        elif isinstance(f, spdy.RstStream):
            st = self.streams.get(f.stream_id)
            if st is not None:
                st._on_reset()
        elif isinstance(f, spdy.Ping):
            if (f.ping_id % 2 == 1) == self.server:     # the peer's ping: echo it
                await self.send(spdy.Ping(f.ping_id))
        elif isinstance(f, spdy.Settings):
            for _flags, sid, value in f.values:
                if sid == spdy.SETTINGS_INITIAL_WINDOW_SIZE:
                    self.peer_flow_control = True
                    delta = value - self.initial_send_window
                    self.initial_send_window = value
                    for st in self.streams.values():
                        st.send_window += delta
                        st._window_open.set()
        elif isinstance(f, spdy.WindowUpdate):
            self.peer_flow_control = True
            if f.stream_id == 0:
                self.session_send_window += f.delta
                for st in self.streams.values():
                    st._window_open.set()
            else:
                st = self.streams.get(f.stream_id)
                if st is not None:
                    st.send_window += f.delta
                    st._window_open.set()
        elif isinstance(f, spdy.GoAway):
            self.incoming.put_nowait(None)

    async def _consumed(self, st: SpdyStream, n: int) -> None:
        """The application read ``n`` bytes of ``st``: reopen the windows by half-window steps."""
        self._session_unacked += n
        with contextlib.suppress(ConnectionError):
            if st._unacked >= spdy.DEFAULT_WINDOW // 2 and not st.remote_closed and not st.reset:
                delta, st._unacked = st._unacked, 0
                await self.send(spdy.WindowUpdate(st.id, delta))
            if self._session_unacked >= spdy.DEFAULT_WINDOW // 2 and not self.closed:
                delta, self._session_unacked = self._session_unacked, 0
                await self.send(spdy.WindowUpdate(0, delta))

    def _maybe_forget(self, st: SpdyStream) -> None:
        if st.local_closed and st.remote_closed and not st._chunks:
            self.streams.pop(st.id, None)


__all__ = ["SpdyConnection", "SpdyStream", "StreamReset"]
