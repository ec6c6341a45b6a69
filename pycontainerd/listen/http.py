"""The daemon's one HTTP/1.1 server loop, on its event loop (HTTP parsed by :mod:`h11`): the
operator endpoints (:mod:`.debug`, :mod:`.metrics`) and the CRI's streaming server
(:mod:`pycontainerd.cri.streaming.server`) all listen and serve through :class:`HTTPServer`.

Two kinds of handler:

* ``handler(Request) -> Response`` — a whole request in, a response out, keep-alive, bodies
  up to :data:`MAX_BODY` (the operator endpoints);
* ``upgrade(Upgrade)`` — one request head per connection, answered or switched to another
  protocol by the handler itself (the streaming server's SPDY and WebSocket upgrades).

It listens on a unix socket (an absolute path; mode 0660, owned by the configured uid/gid)
or on ``host:port`` (TLS when given an :class:`ssl.SSLContext`), never blocks the loop, can
close connections idle for ``idle_timeout`` seconds, and stops with its owner. HTTP is served
without authentication: bind TCP addresses to loopback, or use the unix socket, whose mode
guards it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import socket
import ssl as ssl_mod
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from ..errdefs import FailedPrecondition, InvalidArgument, quote
from ..log import get_logger
from .sockets import prepare_unix_socket

log = get_logger("http")

MAX_BODY = 64 << 10  # bytes a request body may have
READ_TIMEOUT = 30.0  # seconds a connection may sit idle between requests (request handlers)


@dataclass
class Response:
    """What a handler returns: status, body, content type (and extra headers)."""

    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Handler = Callable[[Request], Awaitable[Response]]


class Upgrade:
    """One request head handed to an ``upgrade`` handler, with its connection: answer it
    (:meth:`respond`, then the connection closes) or switch protocols (:meth:`switch`; the
    new protocol then runs on ``reader``/``writer``, starting with the bytes of
    :attr:`pending` the client already sent)."""

    def __init__(self, conn, head, reader, writer) -> None:
        self._conn = conn
        self.method = head.method.decode("latin-1")
        target = urlsplit(head.target.decode(errors="replace"))
        self.path = target.path
        self.query = parse_qs(target.query)
        self.headers: dict[str, list[str]] = {}
        for name, value in head.headers:
            self.headers.setdefault(name.decode("latin-1").lower(), []).append(value.decode(errors="replace"))
        self.pending: bytes = conn.trailing_data[0]
        self.reader, self.writer = reader, writer

    async def respond(self, status: int, body: str, extra: list[tuple[str, str]] = ()) -> None:
        """A text response, and the connection closes."""
        import h11

        data = body.encode()
        headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(data))),
                   ("Connection", "close"), *extra]
        self.writer.write(self._conn.send(h11.Response(status_code=status, headers=headers)))
        self.writer.write(self._conn.send(h11.Data(data=data)))
        self.writer.write(self._conn.send(h11.EndOfMessage()))
        await self.writer.drain()

    async def switch(self, headers: list[tuple[str, str]]) -> None:
        """``101 Switching Protocols`` with ``headers``."""
        import h11

        self.writer.write(self._conn.send(h11.InformationalResponse(status_code=101, headers=headers)))
        await self.writer.drain()


def parse_address(address: str, setting: str = "address") -> tuple[str | None, int] | Path:
    """``/abs/path`` → a unix socket path; ``host:port``, ``[v6]:port`` or ``:port`` (every
    interface) → ``(host or None, port)``. Raises :class:`InvalidArgument`, whose message
    starts with ``setting`` (the config key the address came from, e.g. ``[metrics] address``)."""
    if address.startswith("/"):
        return Path(address)
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise InvalidArgument(f"{setting} {quote(address)} is neither an absolute unix socket path nor host:port")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    return (host or None, int(port))


class _Idle:
    """Last activity of a connection (reads and writes both count)."""

    def __init__(self) -> None:
        self.last = time.monotonic()

    def touch(self) -> None:
        self.last = time.monotonic()


class _TouchingReader:
    def __init__(self, reader: asyncio.StreamReader, idle: _Idle) -> None:
        self._r, self._idle = reader, idle

    async def read(self, n: int = -1) -> bytes:
        data = await self._r.read(n)
        self._idle.touch()
        return data


class _TouchingWriter:
    def __init__(self, writer: asyncio.StreamWriter, idle: _Idle) -> None:
        self._w, self._idle = writer, idle

    def write(self, data: bytes) -> None:
        self._idle.touch()
        self._w.write(data)

    async def drain(self) -> None:
        await self._w.drain()

    def close(self) -> None:
        self._w.close()

    async def wait_closed(self) -> None:
        await self._w.wait_closed()

    def get_extra_info(self, name: str, default=None):
        return self._w.get_extra_info(name, default)


class HTTPServer:
    """The HTTP server of one endpoint: ``handler`` answers whole requests, or ``upgrade``
    takes one request head per connection (see the module docstring). ``name`` names it in
    logs and errors; errors about the address name ``setting`` (default: the config key
    ``[<name>] address``). ``idle_timeout`` (seconds, 0: never) closes a connection with no
    traffic either way for that long; ``max_head`` bounds a request's head."""

    def __init__(self, name: str, handler: Handler | None = None, *,
                 upgrade: Callable[[Upgrade], Awaitable[None]] | None = None, idle_timeout: float = 0.0,
                 max_head: int = 16 << 10, setting: str = "") -> None:
        assert (handler is None) != (upgrade is None), "a handler or an upgrade handler"
        self.name = name
        self.setting = setting or f"[{name}] address"
        self.handler = handler
        self.upgrade = upgrade
        self.idle_timeout = idle_timeout
        self.max_head = max_head
        self.server: asyncio.AbstractServer | None = None
        self.socket_path: Path | None = None
        self._conns: set[asyncio.Task] = set()

    @property
    def address(self) -> str:
        """Where it listens: the socket path, or ``host:port`` with the real port."""
        if self.socket_path is not None:
            return str(self.socket_path)
        assert self.server is not None
        host, port = self.server.sockets[0].getsockname()[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    @property
    def connections(self) -> int:
        """Connections open now."""
        return len(self._conns)

    async def start(self, address: str, uid: int = -1, gid: int = -1) -> None:
        """Listen on ``address`` (see :func:`parse_address`); a unix socket is made 0660 and
        chowned to ``uid``/``gid`` (``-1``: unchanged).

        Raises:
            InvalidArgument: a malformed address.
            FailedPrecondition: the address is in use (or not ours to replace).
        """
        where = parse_address(address, self.setting)
        try:
            if isinstance(where, Path):
                prepare_unix_socket(where, self.setting)
                old = os.umask(0o117)  # born 0660
                try:
                    self.server = await asyncio.start_unix_server(self._connection, path=str(where))
                finally:
                    os.umask(old)
                self.socket_path = where
                os.chmod(where, 0o660)
                if (uid, gid) != (-1, -1) and (uid, gid) != (os.getuid(), os.getgid()):
                    os.chown(where, uid, gid)
            else:
                await self.listen_tcp(*where)
        except OSError as exc:
            raise FailedPrecondition(f"cannot listen for the {self.name} endpoint on {quote(address)} "
                                     f"({self.setting}): {exc.strerror or exc}") from exc
        log.info(f"serving {self.name}", address=self.address)

    async def listen_tcp(self, host: str | None, port: int, ssl: ssl_mod.SSLContext | None = None) -> None:
        """Listen on TCP ``host:port`` (port 0: a free one; see :attr:`address`), with TLS
        when ``ssl`` is given. Raises :class:`OSError`.

        An IP address is bound here, as the event loop would bind it: the loop resolves
        ``host`` first, and uvloop does that on libuv's pool of 4 threads, started for that one
        lookup and then idle for the daemon's life."""
        sock = _bound_socket(host, port)
        if sock is None:  # a name (or every interface): the loop resolves it
            self.server = await asyncio.start_server(self._connection, host=host, port=port, reuse_address=True,
                                                     ssl=ssl)
            return
        try:
            self.server = await asyncio.start_server(self._connection, sock=sock, ssl=ssl)
        except BaseException:
            sock.close()
            raise

    async def close(self) -> None:
        """Stop listening, end open connections, remove the unix socket."""
        if self.server is None:
            return
        self.server.close()
        for task in list(self._conns):
            task.cancel()
        if self._conns:
            await asyncio.gather(*self._conns, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.server.wait_closed(), 5)
        self.server = None
        if self.socket_path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()

    # -- one connection ----------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        import h11  # loaded with the first endpoint, not with the daemon

        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        watchdog = None
        if self.idle_timeout:
            idle = _Idle()
            reader, writer = _TouchingReader(reader, idle), _TouchingWriter(writer, idle)
            watchdog = asyncio.get_running_loop().create_task(self._watch_idle(idle, writer))
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self.max_head)
        try:
            if self.upgrade is not None:
                head = await self._read_head(conn, reader)
                if head is not None:
                    await self.upgrade(Upgrade(conn, head, reader, writer))
            else:
                await self._serve_requests(conn, reader, writer)
        except (h11.ProtocolError, ConnectionError, OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as exc:
            log.debug(f"{self.name} connection ended", error=str(exc))
        except Exception as exc:  # noqa: BLE001 - one connection must not take the server down
            log.error(f"{self.name} connection failed", error=repr(exc), exc_info=exc)
        finally:
            if watchdog is not None:
                watchdog.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watchdog
            self._conns.discard(task)
            writer.close()
            if self.upgrade is None:  # an upgraded (TLS) stream is not waited for: its peer may be gone
                with contextlib.suppress(Exception):
                    await writer.wait_closed()

    async def _watch_idle(self, idle: _Idle, writer) -> None:
        while True:
            left = idle.last + self.idle_timeout - time.monotonic()
            if left <= 0:
                log.info(f"closing idle {self.name} connection", idle_timeout=self.idle_timeout)
                writer.close()
                return
            await asyncio.sleep(left)

    async def _serve_requests(self, conn, reader, writer) -> None:
        import h11

        try:
            while True:
                request = await self._read_request(conn, reader)
                if request is None:
                    return
                try:
                    response = await self.handler(request)
                except Exception as exc:  # a bug in a handler must not kill the endpoint
                    log.error(f"{self.name} handler failed", path=request.path, error=repr(exc), exc_info=exc)
                    response = Response(500, f"internal error: {exc}\n".encode())
                if request.method == "HEAD":
                    response.body, length = b"", len(response.body)
                else:
                    length = len(response.body)
                headers = [("content-type", response.content_type), ("content-length", str(length)),
                           *response.headers]
                writer.write(conn.send(h11.Response(status_code=response.status, headers=headers)))
                writer.write(conn.send(h11.Data(data=response.body)) if response.body else b"")
                writer.write(conn.send(h11.EndOfMessage()))
                await writer.drain()
                if conn.our_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
        except h11.RemoteProtocolError as exc:
            with contextlib.suppress(Exception):  # answer 400 if h11 still lets us
                body = f"bad request: {exc}\n".encode()
                writer.write(conn.send(h11.Response(status_code=400, headers=[
                    ("content-type", "text/plain; charset=utf-8"), ("content-length", str(len(body))),
                    ("connection", "close")])))
                writer.write(conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage()))
                await writer.drain()

    @staticmethod
    async def _read_head(conn, reader):
        """The next request's head (an ``h11.Request``), or None when the client went away."""
        import h11

        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                conn.receive_data(data)
                if not data and conn.their_state is not h11.SEND_BODY:
                    return None
                continue
            if isinstance(event, h11.Request):
                return event
            if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return None

    @staticmethod
    async def _read_request(conn, reader) -> Request | None:
        import h11

        head: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await asyncio.wait_for(reader.read(65536), READ_TIMEOUT)
                conn.receive_data(data)
                continue
            if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return None
            if isinstance(event, h11.Request):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_BODY:
                    raise h11.LocalProtocolError("request body too large")
            elif isinstance(event, h11.EndOfMessage):
                assert head is not None
                target = head.target.decode("latin-1").split("?", 1)[0]
                headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in head.headers}
                return Request(head.method.decode("latin-1"), target, headers, bytes(body))


def _bound_socket(host: str | None, port: int) -> socket.socket | None:
    """A listening TCP socket on the IP address ``host`` (``SO_REUSEADDR``; an IPv6 one
    ``IPV6_V6ONLY``, as asyncio's ``create_server`` makes them); None when ``host`` is not
    an IP address. Raises :class:`OSError`."""
    try:
        family = socket.AF_INET6 if ipaddress.ip_address((host or "").strip("[]")).version == 6 else socket.AF_INET
    except ValueError:
        return None
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        address = ((host or "").strip("[]"), port)
        try:
            sock.bind(address)
        except OSError as exc:  # the event loop's own wording
            raise OSError(exc.errno, f"error while attempting to bind on address {address!r}: "
                                     f"{(exc.strerror or str(exc)).lower()}") from None
        sock.listen(100)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock
