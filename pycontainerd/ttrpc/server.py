"""A blocking, thread-free ttrpc server on a :class:`~.reactor.Reactor`.

Services are registered as ``{method name: handler}``; a handler gets the request payload
(bytes) and a :class:`CallContext` and returns the response payload — or a
:class:`Deferred` to answer later (the shim's ``Wait``), while the loop goes on serving
every other connection and request. A handler that raises a
:class:`~pycontainerd.errdefs.ContainerdError` is answered with its status code
(``NotFound`` → ``NOT_FOUND`` …); any other exception becomes ``UNKNOWN``.

Protocol behaviour follows containerd/ttrpc's server: an unknown service or method is
``UNIMPLEMENTED`` (``service X`` / ``method X``), an even stream id or an unparsable request
is ``INVALID_ARGUMENT``, a message over 4 MiB is discarded and answered with
``RESOURCE_EXHAUSTED``; a request's ``timeout_nano`` bounds how long a deferred answer may
take (then ``DEADLINE_EXCEEDED``). With ``require_same_user`` (the shim's setting, as
``ttrpc.UnixSocketRequireSameUser``) a peer with another uid/gid is disconnected.

Example::

    server = Server()
    server.register("example.v1.Echo", {"Echo": lambda payload, ctx: payload})
    server.listen("/run/example.sock")
    server.serve_forever()
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import sys
from collections.abc import Callable, Mapping

from ..errdefs import DeadlineExceeded
from . import wire
from .reactor import Reactor, Timer


class Deferred:
    """A response that is not ready yet: :meth:`resolve` with the payload or :meth:`reject`."""

    __slots__ = ("done", "result", "error", "_callbacks")

    def __init__(self) -> None:
        self.done = False
        self.result: bytes = b""
        self.error: BaseException | None = None
        self._callbacks: list[Callable[[Deferred], None]] = []

    def resolve(self, payload: bytes) -> None:
        if not self.done:
            self.done, self.result = True, payload
            self._fire()

    def reject(self, error: BaseException) -> None:
        if not self.done:
            self.done, self.error = True, error
            self._fire()

    def add_done_callback(self, cb: Callable[[Deferred], None]) -> None:
        if self.done:
            cb(self)
        else:
            self._callbacks.append(cb)

    def _fire(self) -> None:
        callbacks, self._callbacks = self._callbacks, []
        for cb in callbacks:
            cb(self)


class CallContext:
    """What a handler knows about its call."""

    __slots__ = ("service", "method", "stream_id", "metadata", "timeout", "connection")

    def __init__(self, service: str, method: str, stream_id: int, metadata: dict[str, list[str]],
                 timeout: float | None, connection: Connection) -> None:
        self.service = service
        self.method = method
        self.stream_id = stream_id
        self.metadata = metadata
        self.timeout = timeout
        self.connection = connection

    @property
    def namespace(self) -> str | None:
        """The namespace the client sent (``containerd-namespace-ttrpc``), if any."""
        values = self.metadata.get(wire.NAMESPACE_KEY)
        return values[0] if values else None


Handler = Callable[[bytes, CallContext], "bytes | Deferred"]


class Server:
    """Serves registered services on unix sockets; see the module docstring."""

    def __init__(self, reactor: Reactor | None = None, *, require_same_user: bool = False) -> None:
        self.reactor = reactor or Reactor()
        self.require_same_user = require_same_user
        self._services: dict[str, Mapping[str, Handler]] = {}
        self._listeners: list[socket.socket] = []
        self._paths: list[str] = []
        self.connections: set[Connection] = set()
        self.on_connection_closed: Callable[[Connection], None] | None = None

    def register(self, service: str, methods: Mapping[str, Handler]) -> None:
        if service in self._services:
            raise ValueError(f"service {service} already registered")
        self._services[service] = dict(methods)

    def listen(self, path: str) -> socket.socket:
        """Bind a unix socket at ``path`` (mode 0600; ``\\0…`` for an abstract one) and serve it."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.bind(path)
            if not path.startswith("\0"):
                os.chmod(path, 0o600)
                self._paths.append(path)
            sock.listen(128)
        except BaseException:
            sock.close()
            raise
        self.add_listener(sock)
        return sock

    def add_listener(self, sock: socket.socket) -> None:
        """Serve an already listening socket (e.g. one inherited from ``shim start``)."""
        sock.setblocking(False)
        self._listeners.append(sock)
        self.reactor.add_reader(sock.fileno(), lambda: self._accept(sock))

    def _accept(self, lsock: socket.socket) -> None:
        while True:
            try:
                conn, _ = lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    print(f"ttrpc: accept: {exc}", file=sys.stderr)
                    return
                raise
            if self.require_same_user and not _same_user(conn):
                conn.close()
                continue
            c = Connection(self, conn)
            self.connections.add(c)

    def serve_forever(self) -> None:
        self.reactor.run()

    def close_listeners(self) -> None:
        for sock in self._listeners:
            self.reactor.forget(sock.fileno())
            sock.close()
        self._listeners.clear()
        for path in self._paths:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        self._paths.clear()

    def close(self) -> None:
        """Stop accepting and drop every connection (pending deferred answers are lost)."""
        self.close_listeners()
        for c in list(self.connections):
            c.close()

    def flush(self, timeout: float = 1.0) -> None:
        """Block (up to ``timeout``) until every queued response is written; before exit."""
        for c in list(self.connections):
            c.flush_blocking(timeout)

    # dispatch ---------------------------------------------------------------------------

    def _handle(self, conn: Connection, sid: int, payload: bytes) -> None:
        try:
            req = wire.decode_request(payload)
        except Exception as exc:
            conn.send_status(sid, wire.status("INVALID_ARGUMENT", f"unmarshal request error: {exc}"))
            return
        methods = self._services.get(req.service)
        if methods is None:
            conn.send_status(sid, wire.status("UNIMPLEMENTED", f"service {req.service}"))
            return
        handler = methods.get(req.method)
        if handler is None:
            conn.send_status(sid, wire.status("UNIMPLEMENTED", f"method {req.method}"))
            return
        timeout = req.timeout_nano / 1e9 if req.timeout_nano > 0 else None
        ctx = CallContext(req.service, req.method, sid, wire.metadata_dict(req.metadata), timeout, conn)
        try:
            result = handler(req.payload, ctx)
        except Exception as exc:
            conn.send_status(sid, wire.status_from_exception(exc))
            return
        if isinstance(result, Deferred):
            conn.defer(sid, result, timeout)
        else:
            conn.send_payload(sid, result)


class Connection:
    """One accepted client connection: reads requests, writes responses in any order."""

    def __init__(self, server: Server, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.fd = sock.fileno()
        sock.setblocking(False)
        self.decoder = wire.FrameDecoder()
        self.out = bytearray()
        self.closed = False
        self.pending: dict[int, tuple[Deferred, Timer | None]] = {}
        server.reactor.add_reader(self.fd, self._on_readable)

    def _on_readable(self) -> None:
        try:
            data = self.sock.recv(1 << 16)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close()
            return
        if not data:
            self.close()
            return
        for sid, mtype, _flags, payload in self.decoder.feed(data):
            if self.closed:
                return
            if isinstance(payload, wire.Oversized):
                self.send_status(sid, wire.status(
                    "RESOURCE_EXHAUSTED",
                    f"message length {payload.length} exceed maximum message size of {wire.MAX_MESSAGE}"))
                continue
            if mtype != wire.TYPE_REQUEST:
                continue
            if sid % 2 != 1:
                self.send_status(sid, wire.status("INVALID_ARGUMENT", "StreamID must be odd for client initiated streams"))
                continue
            self.server._handle(self, sid, payload)

    def defer(self, sid: int, d: Deferred, timeout: float | None) -> None:
        timer = None
        if timeout is not None and not d.done:
            timer = self.server.reactor.call_later(timeout, lambda: self._expire(sid))
        self.pending[sid] = (d, timer)
        d.add_done_callback(lambda d: self._deferred_done(sid, d))

    def _expire(self, sid: int) -> None:
        entry = self.pending.pop(sid, None)
        if entry is not None:
            self.send_status(sid, wire.status_from_exception(DeadlineExceeded()))

    def _deferred_done(self, sid: int, d: Deferred) -> None:
        entry = self.pending.pop(sid, None)
        if entry is None or entry[0] is not d:
            return  # expired, or the connection is gone
        if entry[1] is not None:
            entry[1].cancel()
        if d.error is not None:
            self.send_status(sid, wire.status_from_exception(d.error))
        else:
            self.send_payload(sid, d.result)

    def send_payload(self, sid: int, payload: bytes) -> None:
        data = wire.encode_response(payload)
        if len(data) > wire.MAX_MESSAGE:
            self.send_status(sid, wire.status(
                "RESOURCE_EXHAUSTED", f"message length {len(data)} exceed maximum message size of {wire.MAX_MESSAGE}"))
            return
        self._send(sid, data)

    def send_status(self, sid: int, st: wire.Status) -> None:
        self._send(sid, wire.encode_response(b"", st))

    def _send(self, sid: int, data: bytes) -> None:
        if self.closed:
            return
        self.out += wire.encode_frame(sid, wire.TYPE_RESPONSE, data)
        self._on_writable()

    def _on_writable(self) -> None:
        while self.out:
            try:
                n = self.sock.send(self.out)
            except (BlockingIOError, InterruptedError):
                self.server.reactor.add_writer(self.fd, self._on_writable)
                return
            except OSError:
                self.close()
                return
            del self.out[:n]
        self.server.reactor.remove_writer(self.fd)

    def flush_blocking(self, timeout: float) -> None:
        if self.closed or not self.out:
            return
        self.sock.settimeout(timeout)
        try:
            self.sock.sendall(self.out)
            self.out.clear()
        except OSError:
            pass
        finally:
            if not self.closed:
                self.sock.setblocking(False)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.server.reactor.forget(self.fd)
        for _, timer in self.pending.values():
            if timer is not None:
                timer.cancel()
        self.pending.clear()
        self.sock.close()
        self.server.connections.discard(self)
        if self.server.on_connection_closed is not None:
            self.server.on_connection_closed(self)


_UCRED = struct.Struct("3i")


def _same_user(conn: socket.socket) -> bool:
    try:
        _pid, uid, gid = _UCRED.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
    except OSError:
        return False
    return uid == os.geteuid() and gid == os.getegid()
