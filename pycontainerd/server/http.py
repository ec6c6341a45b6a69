"""One small HTTP/1.1 server on the daemon's event loop (HTTP parsed by :mod:`h11`), for the
operator endpoints (:mod:`.debug`, :mod:`.metrics`): a unix socket (an absolute path; mode
0660, owned by the configured uid/gid) or ``host:port``. It never blocks the loop and stops
with the daemon. HTTP is served without authentication: bind TCP addresses to loopback, or
use the unix socket, whose mode guards it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errdefs import FailedPrecondition, InvalidArgument, quote
from ..log import get_logger
from .sockets import prepare_unix_socket

log = get_logger("http")

MAX_BODY = 64 << 10  # bytes a request body may have
READ_TIMEOUT = 30.0  # seconds a connection may sit idle between requests


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


class HTTPServer:
    """A minimal HTTP/1.1 server on the running loop: one ``handler`` for every request,
    keep-alive, bodies up to :data:`MAX_BODY`. ``name`` names it in logs and errors, and
    errors about the address name the config key ``[<name>] address``."""

    def __init__(self, name: str, handler: Handler) -> None:
        self.name = name
        self.setting = f"[{name}] address"
        self.handler = handler
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
                    self.server = await asyncio.start_unix_server(self._serve, path=str(where))
                finally:
                    os.umask(old)
                self.socket_path = where
                os.chmod(where, 0o660)
                if (uid, gid) != (-1, -1) and (uid, gid) != (os.getuid(), os.getgid()):
                    os.chown(where, uid, gid)
            else:
                host, port = where
                self.server = await asyncio.start_server(self._serve, host=host, port=port, reuse_address=True)
        except OSError as exc:
            raise FailedPrecondition(f"cannot listen for the {self.name} endpoint on {quote(address)} "
                                     f"({self.setting}): {exc.strerror or exc}") from exc
        log.info(f"serving {self.name}", address=self.address)

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

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        import h11  # loaded with the first endpoint, not with the daemon

        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        conn = h11.Connection(h11.SERVER)
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
        except (h11.ProtocolError, ConnectionError, asyncio.TimeoutError):
            return
        finally:
            self._conns.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _read_request(self, conn, reader: asyncio.StreamReader) -> Request | None:
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
