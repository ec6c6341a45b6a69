"""The daemon's operator endpoints: the debug endpoint, the metrics endpoint, stack dumps.

As containerd does (``cmd/containerd/command/main.go``), the daemon can serve, besides its
gRPC socket:

* ``[debug] address`` — a small HTTP/1.1 endpoint on a unix socket (an absolute path; mode
  0660, owned by ``[debug] uid/gid``) or on ``host:port``:

  ======================  ==========================================================
  ``GET /debug/loglevel``  the level in force, as text (``info\\n``)
  ``PUT /debug/loglevel``  body ``debug`` (or ``trace``, ``info``, ``warn``, ``error``):
                           every logger switches at once, no restart; ``400`` for an
                           unknown level
  ``GET /debug/stacks``    the stack of every asyncio task and every thread, as text
  ======================  ==========================================================

  e.g. ``curl --unix-socket /run/pycontainerd/debug.sock -X PUT -d debug
  http://localhost/debug/loglevel``.
* ``[metrics] address`` — Prometheus metrics at ``/v1/metrics`` (:mod:`.metrics`).
* ``SIGUSR1`` — the stack dump above, logged at info level (key ``stacks``) and written to
  ``$TMPDIR/pycontainerd.<pid>.stacks.log``, as containerd dumps its goroutines.
* ``$NOTIFY_SOCKET`` — ``READY=1`` once everything serves, ``STOPPING=1`` at shutdown, for a
  systemd ``Type=notify`` unit (``contrib/pycontainerd.service``).

Both endpoints run on the daemon's event loop (HTTP parsed by :mod:`h11`), never block it,
and stop with the daemon. HTTP is served without authentication: bind TCP addresses to
loopback, or use the unix socket, whose mode guards it.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import signal
import socket
import sys
import tempfile
import threading
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .. import log as logmod
from ..config import Config
from ..errdefs import FailedPrecondition, InvalidArgument, quote
from ..log import get_logger
from ..plugin import PluginSet

log = get_logger("debug")

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
                from .server import prepare_unix_socket

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


# --- stack dumps ------------------------------------------------------------------------------


def _await_chain(coro) -> list:
    """The frames of a suspended coroutine and of everything it awaits, outermost first."""
    frames = []
    seen = 0
    while coro is not None and seen < 256:
        seen += 1
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None) or getattr(coro, "ag_frame", None)
        if frame is not None:
            frames.append(frame)
        coro = (getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
                or getattr(coro, "ag_await", None))
    return frames


def dump_stacks() -> str:
    """Every asyncio task of the running loop (its whole ``await`` chain) and every thread's
    stack, as text — what ``SIGUSR1`` logs and ``GET /debug/stacks`` returns."""
    out = io.StringIO()
    try:
        tasks = sorted(asyncio.all_tasks(), key=lambda t: t.get_name())
    except RuntimeError:  # no running loop
        tasks = []
    out.write(f"=== asyncio tasks ({len(tasks)}) ===\n")
    for task in tasks:
        coro = task.get_coro()
        name = getattr(coro, "__qualname__", type(coro).__name__)
        out.write(f"task {task.get_name()} coro={name}{' (done)' if task.done() else ''}\n")
        summary = traceback.StackSummary.extract(
            ((f, f.f_lineno) for f in _await_chain(coro)), lookup_lines=True
        )
        out.writelines(summary.format())
    threads = {t.ident: t for t in threading.enumerate()}
    frames = sys._current_frames()
    out.write(f"=== threads ({len(frames)}) ===\n")
    for ident, frame in sorted(frames.items()):
        thread = threads.get(ident)
        out.write(f"thread {thread.name if thread else '?'} ident={ident}\n")
        out.writelines(traceback.format_stack(frame))
    return out.getvalue()


def log_stacks() -> Path | None:
    """Log :func:`dump_stacks` and write it to ``$TMPDIR/pycontainerd.<pid>.stacks.log``
    (containerd's ``dumpStacks``); returns the file, or None if it could not be written."""
    text = dump_stacks()
    log.info("=== BEGIN task and thread stack dump ===", stacks=text)
    path = Path(tempfile.gettempdir()) / f"pycontainerd.{os.getpid()}.stacks.log"
    try:
        path.write_text(text)
    except OSError as exc:
        log.warning("cannot write the stack dump", path=str(path), error=exc.strerror)
        return None
    log.info("stack dump written", path=str(path))
    return path


def sd_notify(state: str) -> bool:
    """Tell systemd ``state`` (``READY=1``, ``STOPPING=1``) over ``$NOTIFY_SOCKET`` when it
    is set (a ``Type=notify`` unit, as containerd's); returns whether it was sent. A path
    starting with ``@`` is an abstract socket."""
    target = os.environ.get("NOTIFY_SOCKET", "")
    if not target:
        return False
    address = "\0" + target[1:] if target.startswith("@") else target
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(state.encode(), address)
    except OSError as exc:
        log.warning("cannot notify systemd", socket=target, error=exc.strerror)
        return False
    return True


# --- the debug endpoint -----------------------------------------------------------------------


async def debug_handler(request: Request) -> Response:
    """The routes of the debug endpoint (see the module docstring)."""
    if request.path == "/debug/loglevel":
        if request.method in ("GET", "HEAD"):
            return Response(body=f"{logmod.level()}\n".encode())
        if request.method in ("PUT", "POST"):
            wanted = request.body.decode(errors="replace").strip()
            previous = logmod.level()
            try:
                logmod.set_level(wanted)
            except ValueError as exc:
                return Response(400, f"{exc}\n".encode())
            # not ``level=``: structlog's own key for the line's level would overwrite it
            log.info("log level changed", new_level=logmod.level(), previous=previous)
            return Response(body=f"{logmod.level()}\n".encode())
        return Response(405, b"use GET or PUT\n", headers=[("allow", "GET, HEAD, PUT")])
    if request.path == "/debug/stacks":
        if request.method not in ("GET", "HEAD"):
            return Response(405, b"use GET\n", headers=[("allow", "GET, HEAD")])
        return Response(body=dump_stacks().encode())
    return Response(404, b"not found: try /debug/loglevel or /debug/stacks\n")


class Operations:
    """The debug and metrics endpoints, the ``SIGUSR1`` handler and systemd's readiness
    notice of one daemon run.

    ``start()`` once the gRPC server serves (it then tells systemd the daemon is ready),
    ``stop()`` after the gRPC server stopped and before the plugins close (a scrape reads
    their stores).
    """

    def __init__(self, cfg: Config, plugins: PluginSet, services: Sequence[str] = ()) -> None:
        self.cfg = cfg
        self.plugins = plugins
        self.services = services  # the gRPC server's service names, for the metrics' zero series
        self.debug: HTTPServer | None = None
        self.metrics = None  # services.metrics.MetricsEndpoint
        self._signal = False

    async def start(self) -> None:
        """Raises :class:`InvalidArgument` (bad address) or :class:`FailedPrecondition`
        (address in use); whatever had started is stopped again."""
        try:
            if self.cfg.metrics.address:
                from .metrics import MetricsEndpoint

                self.metrics = MetricsEndpoint(self.plugins, grpc_histogram=self.cfg.metrics.grpc_histogram,
                                               services=self.services)
                await self.metrics.start(self.cfg.metrics.address)
            if self.cfg.debug.address:
                self.debug = HTTPServer("debug", debug_handler)
                await self.debug.start(self.cfg.debug.address, self.cfg.debug.uid, self.cfg.debug.gid)
        except BaseException:
            await self.stop()
            raise
        with contextlib.suppress(NotImplementedError, RuntimeError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, log_stacks)
            self._signal = True
        sd_notify("READY=1")

    async def stop(self) -> None:
        sd_notify("STOPPING=1")
        if self._signal:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_signal_handler(signal.SIGUSR1)
            self._signal = False
        if self.debug is not None:
            await self.debug.close()
            self.debug = None
        if self.metrics is not None:
            await self.metrics.close()
            self.metrics = None
