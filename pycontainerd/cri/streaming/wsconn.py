"""A WebSocket connection over asyncio streams with :mod:`wsproto` doing the framing
(RFC 6455), used by the server after its own h11 handshake and by our test client.

:meth:`WsConnection.run` reads until the peer closes; whole messages (``bytes`` for
binary, ``str`` for text) arrive through :meth:`recv` (``None`` at the end). Pings are
answered; a close from the peer is acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Message, Ping, TextMessage
from wsproto.utilities import LocalProtocolError, RemoteProtocolError


class WsConnection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, client: bool,
                 max_message: int = 16 << 20) -> None:
        self.reader = reader
        self.writer = writer
        self.ws = Connection(ConnectionType.CLIENT if client else ConnectionType.SERVER)
        self.messages: asyncio.Queue[bytes | str | None] = asyncio.Queue()
        self.closed = False
        self.done = asyncio.Event()
        self.max_message = max_message
        self._lock = asyncio.Lock()
        self._partial: list = []

    async def _write(self, data: bytes) -> None:
        if not data:
            return
        async with self._lock:
            try:
                self.writer.write(data)
                await self.writer.drain()
            except (ConnectionError, RuntimeError) as exc:
                self._lost()
                raise ConnectionResetError(str(exc)) from exc

    async def send(self, message: bytes | str) -> None:
        """Send one message (binary for bytes, text for str). Raises ConnectionError when
        the connection is gone."""
        if self.closed or self.ws.state is not ConnectionState.OPEN:
            raise ConnectionResetError("websocket is closed")
        try:
            data = self.ws.send(BytesMessage(data=message) if isinstance(message, bytes) else TextMessage(data=message))
        except LocalProtocolError as exc:
            raise ConnectionResetError(str(exc)) from exc
        await self._write(data)

    async def recv(self) -> bytes | str | None:
        if self.done.is_set() and self.messages.empty():
            return None
        return await self.messages.get()

    async def run(self, initial: bytes = b"") -> None:
        """Read and dispatch until the connection ends."""
        try:
            if initial:
                self.ws.receive_data(initial)
                await self._events()
            while not self.closed:
                data = await self.reader.read(65536)
                self.ws.receive_data(data or None)
                await self._events()
                if not data:
                    break
        except (ConnectionError, OSError, RemoteProtocolError):
            pass
        finally:
            self._lost()

    async def _events(self) -> None:
        for ev in self.ws.events():
            if isinstance(ev, Message):
                self._partial.append(ev.data)
                if sum(len(p) for p in self._partial) > self.max_message:
                    await self.close(1009, "message too big")
                    return
                if ev.message_finished:
                    joined = (b"".join(self._partial) if isinstance(ev, BytesMessage) else "".join(self._partial))
                    self._partial = []
                    self.messages.put_nowait(joined)
            elif isinstance(ev, Ping):
                with contextlib.suppress(ConnectionError, LocalProtocolError):
                    await self._write(self.ws.send(ev.response()))
            elif isinstance(ev, CloseConnection):
                with contextlib.suppress(ConnectionError, LocalProtocolError):
                    if self.ws.state is ConnectionState.REMOTE_CLOSING:
                        await self._write(self.ws.send(ev.response()))
                self._lost()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame (if still open) and close the transport."""
        if self.ws.state is ConnectionState.OPEN:
            with contextlib.suppress(ConnectionError, LocalProtocolError):
                await self._write(self.ws.send(CloseConnection(code=code, reason=reason)))
        self._lost()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()

    def _lost(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.messages.put_nowait(None)
        self.done.set()
        with contextlib.suppress(Exception):
            self.writer.close()


class WsTunnel:
    """A byte stream carried in a WebSocket's binary messages (Kubernetes' SPDY tunnel): the
    reader and writer halves :class:`~.spdyconn.SpdyConnection` runs on. Closing it is the
    WebSocket owner's business (a close frame)."""

    def __init__(self, ws: WsConnection) -> None:
        self.ws = ws
        self._rest = b""
        self._out: list[bytes] = []

    async def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes; ``b""`` when the WebSocket ended (or sent text, which the
        tunnel does not carry)."""
        while not self._rest:
            msg = await self.ws.recv()
            if msg is None or isinstance(msg, str):
                return b""
            self._rest = msg
        cut = len(self._rest) if n < 0 else n
        data, self._rest = self._rest[:cut], self._rest[cut:]
        return data

    def write(self, data: bytes) -> None:
        self._out.append(bytes(data))

    async def drain(self) -> None:
        if self._out:
            data = b"".join(self._out)
            self._out.clear()
            await self.ws.send(data)

    def close(self) -> None:
        pass

    async def wait_closed(self) -> None:
        pass


__all__ = ["WsConnection", "WsTunnel"]
