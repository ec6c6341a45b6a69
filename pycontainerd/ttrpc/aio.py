"""ttrpc for asyncio: the daemon's client to its shims, and a server for the daemon's
``<grpc socket>.ttrpc`` endpoint (where shims forward events).

:class:`Client` multiplexes any number of concurrent calls on one connection by stream id
(odd, increasing). A non-OK status raises the matching :mod:`pycontainerd.errdefs` class;
a call whose ``timeout`` passes raises :class:`~pycontainerd.errdefs.DeadlineExceeded` (its
late answer is dropped); when the connection is lost — the shim died — every pending and
later call raises :class:`~pycontainerd.errdefs.Unavailable` and the close callbacks run
once (the task manager's "shim disconnected" hook).

:class:`Server` runs each request in its own task; handlers are ``async def
handler(payload: bytes, ctx: CallContext) -> bytes`` and may raise errdefs errors.

Example::

    client = await Client.connect("unix:///run/pycontainerd/s/8f3…")
    payload = await client.call("containerd.task.v2.Task", "State", req.SerializeToString(), timeout=5)
    await client.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

from ..errdefs import DeadlineExceeded, Unavailable
from . import wire


class Client:
    """One ttrpc connection; see the module docstring."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, address: str = "") -> None:
        self.address = address
        self._reader = reader
        self._writer = writer
        self._next_id = 1
        self._pending: dict[int, asyncio.Future[wire.Response]] = {}
        self._closed = asyncio.Event()
        self._close_reason = "ttrpc: closed"
        self._close_callbacks: list[Callable[[], object]] = []
        # The receive loop outlives the call that opened the connection: run it (and the
        # close callbacks it fires) in an empty context, not with that call's log fields.
        self._recv_task = asyncio.get_running_loop().create_task(self._recv_loop(), context=contextvars.Context())

    @classmethod
    async def connect(cls, address: str, timeout: float | None = 10.0) -> Client:
        """Connect to ``address`` (``unix:///path``, ``/path`` or ``@abstract``).

        Raises :class:`Unavailable` when nothing answers there (missing socket, refused,
        or ``timeout`` passes).
        """
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_unix_connection(wire.socket_path(address), limit=wire.MAX_MESSAGE + wire.HEADER_LENGTH),
                timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            raise Unavailable(f"ttrpc: connect {address}: {getattr(exc, 'strerror', None) or exc}") from exc
        return cls(reader, writer, address)

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def add_close_callback(self, cb: Callable[[], object]) -> None:
        """Run ``cb()`` once when the connection ends (by :meth:`close` or by the peer)."""
        if self.closed:
            cb()
        else:
            self._close_callbacks.append(cb)

    async def call(self, service: str, method: str, payload: bytes, timeout: float | None = None,
                   metadata: Iterable[tuple[str, str]] = ()) -> bytes:
        if self.closed:
            raise Unavailable(self._close_reason)
        sid = self._next_id
        self._next_id += 2
        data = wire.encode_request(service, method, payload, int(timeout * 1e9) if timeout else 0, metadata)
        if len(data) > wire.MAX_MESSAGE:
            raise wire.exception_from_status(wire.status(
                "RESOURCE_EXHAUSTED", f"message length {len(data)} exceed maximum message size of {wire.MAX_MESSAGE}"))
        fut: asyncio.Future[wire.Response] = asyncio.get_running_loop().create_future()
        self._pending[sid] = fut
        try:
            try:
                self._writer.write(wire.encode_frame(sid, wire.TYPE_REQUEST, data))
                await self._writer.drain()
            except (OSError, RuntimeError) as exc:
                self._shutdown(f"ttrpc: {exc}")
                raise Unavailable(f"ttrpc: {service}/{method}: {exc}") from exc
            try:
                resp = await asyncio.wait_for(fut, timeout)
            except asyncio.TimeoutError as exc:
                raise DeadlineExceeded(f"ttrpc: {service}/{method}") from exc
        finally:
            self._pending.pop(sid, None)
        err = wire.response_error(resp)
        if err is not None:
            raise err
        return resp.payload

    async def _recv_loop(self) -> None:
        reason = "ttrpc: closed"
        try:
            while True:
                header = await self._reader.readexactly(wire.HEADER_LENGTH)
                length, sid, mtype, _flags = wire.HEADER.unpack(header)
                if length > wire.MAX_MESSAGE:
                    left = length
                    while left:
                        left -= len(await self._reader.read(min(left, 1 << 16))) or _eof()
                    fut = self._pending.get(sid)
                    if fut is not None and not fut.done():
                        fut.set_result(wire.Response(status=wire.status(
                            "RESOURCE_EXHAUSTED", f"message length {length} exceed maximum message size")))
                    continue
                body = await self._reader.readexactly(length)
                if mtype != wire.TYPE_RESPONSE:
                    continue
                fut = self._pending.get(sid)
                if fut is None or fut.done():
                    continue  # the caller timed out or was cancelled
                try:
                    fut.set_result(wire.decode_response(body))
                except Exception as exc:
                    fut.set_exception(Unavailable(f"ttrpc: bad response: {exc}"))
        except (asyncio.IncompleteReadError, ConnectionError, OSError) as exc:
            reason = f"ttrpc: closed: {exc}" if not isinstance(exc, asyncio.IncompleteReadError) else reason
        except asyncio.CancelledError:
            pass
        finally:
            self._shutdown(reason)

    def _shutdown(self, reason: str) -> None:
        if self._closed.is_set():
            return
        self._close_reason = reason
        self._closed.set()
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(Unavailable(reason))
        self._pending.clear()
        self._writer.close()
        callbacks, self._close_callbacks = self._close_callbacks, []
        for cb in callbacks:
            try:
                cb()
            except Exception:  # a hook must not break the others
                pass

    async def close(self) -> None:
        """Close the connection; pending calls fail with :class:`Unavailable`."""
        if self._recv_task is not asyncio.current_task():
            self._recv_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._recv_task
        self._shutdown("ttrpc: closed")
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _eof() -> int:
    raise asyncio.IncompleteReadError(b"", None)


@dataclass
class CallContext:
    service: str
    method: str
    stream_id: int
    metadata: dict[str, list[str]] = field(default_factory=dict)
    timeout: float | None = None

    @property
    def namespace(self) -> str | None:
        values = self.metadata.get(wire.NAMESPACE_KEY)
        return values[0] if values else None


AsyncHandler = Callable[[bytes, CallContext], Awaitable[bytes]]


class Server:
    """An asyncio ttrpc server; see the module docstring."""

    def __init__(self) -> None:
        self._services: dict[str, Mapping[str, AsyncHandler]] = {}
        self._servers: list[asyncio.AbstractServer] = []
        self._paths: list[str] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    def register(self, service: str, methods: Mapping[str, AsyncHandler]) -> None:
        if service in self._services:
            raise ValueError(f"service {service} already registered")
        self._services[service] = dict(methods)

    async def start(self, path: str) -> None:
        """Listen on the unix socket ``path`` (mode 0600)."""
        srv = await asyncio.start_unix_server(self._serve_conn, wire.socket_path(path),
                                              limit=wire.MAX_MESSAGE + wire.HEADER_LENGTH)
        real = wire.socket_path(path)
        if not real.startswith("\0"):
            os.chmod(real, 0o600)
            self._paths.append(real)
        self._servers.append(srv)

    async def close(self) -> None:
        for srv in self._servers:
            srv.close()
        for w in list(self._writers):
            w.close()
        for t in list(self._tasks):
            t.cancel()
        for srv in self._servers:
            with contextlib.suppress(Exception):
                await srv.wait_closed()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._servers.clear()
        for p in self._paths:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(p)
        self._paths.clear()

    async def _serve_conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        conn_tasks: set[asyncio.Task[None]] = set()
        try:
            while True:
                header = await reader.readexactly(wire.HEADER_LENGTH)
                length, sid, mtype, _flags = wire.HEADER.unpack(header)
                if length > wire.MAX_MESSAGE:
                    left = length
                    while left:
                        left -= len(await reader.read(min(left, 1 << 16))) or _eof()
                    self._reply(writer, sid, wire.encode_response(b"", wire.status(
                        "RESOURCE_EXHAUSTED", f"message length {length} exceed maximum message size of {wire.MAX_MESSAGE}")))
                    continue
                body = await reader.readexactly(length)
                if mtype != wire.TYPE_REQUEST:
                    continue
                if sid % 2 != 1:
                    self._reply(writer, sid, wire.encode_response(b"", wire.status(
                        "INVALID_ARGUMENT", "StreamID must be odd for client initiated streams")))
                    continue
                t = asyncio.get_running_loop().create_task(self._dispatch(writer, sid, body))
                conn_tasks.add(t)
                self._tasks.add(t)
                t.add_done_callback(conn_tasks.discard)
                t.add_done_callback(self._tasks.discard)
        except (asyncio.IncompleteReadError, ConnectionError, OSError, asyncio.CancelledError):
            pass
        finally:
            for t in conn_tasks:
                t.cancel()
            self._writers.discard(writer)
            writer.close()

    async def _dispatch(self, writer: asyncio.StreamWriter, sid: int, body: bytes) -> None:
        try:
            req = wire.decode_request(body)
        except Exception as exc:
            self._reply(writer, sid, wire.encode_response(b"", wire.status("INVALID_ARGUMENT", f"unmarshal request error: {exc}")))
            return
        methods = self._services.get(req.service)
        handler = methods.get(req.method) if methods is not None else None
        if handler is None:
            what = f"service {req.service}" if methods is None else f"method {req.method}"
            self._reply(writer, sid, wire.encode_response(b"", wire.status("UNIMPLEMENTED", what)))
            return
        timeout = req.timeout_nano / 1e9 if req.timeout_nano > 0 else None
        ctx = CallContext(req.service, req.method, sid, wire.metadata_dict(req.metadata), timeout)
        try:
            if timeout is not None:
                payload = await asyncio.wait_for(handler(req.payload, ctx), timeout)
            else:
                payload = await handler(req.payload, ctx)
            data = wire.encode_response(payload)
        except asyncio.TimeoutError:
            data = wire.encode_response(b"", wire.status_from_exception(DeadlineExceeded()))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            data = wire.encode_response(b"", wire.status_from_exception(exc))
        self._reply(writer, sid, data)

    @staticmethod
    def _reply(writer: asyncio.StreamWriter, sid: int, data: bytes) -> None:
        if writer.is_closing():
            return
        try:
            writer.write(wire.encode_frame(sid, wire.TYPE_RESPONSE, data))
        except (OSError, RuntimeError, ValueError):
            pass
