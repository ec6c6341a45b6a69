"""The client's gRPC channel: address forms, TLS, connecting with retries, request
metadata (namespace and lease), and error mapping.

Addresses: a unix socket path (``/run/pycontainerd/pycontainerd.sock``, ``unix:///…``,
``unix:…``) or TCP (``host:port``, ``tcp://host:port``). A TCP listener of pycontainerd is
served with TLS only: give :class:`TLSConfig` (or ready ``grpc`` credentials).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc

from .. import namespaces
from ..errdefs import Unavailable
from ..wire.errors import from_rpc_error

DEFAULT_ADDRESS = "/run/pycontainerd/pycontainerd.sock"
"""The daemon's socket when no address is given."""
DEFAULT_SNAPSHOTTER = "overlayfs"
"""The snapshotter images are unpacked into and containers made from when none is given
(here, where every part of the client finds it without loading the snapshots service)."""
LEASE_HEADER = "containerd-lease"
"""gRPC metadata key carrying the lease that protects what a request creates."""

T = TypeVar("T")

DEFAULT_TIMEOUT = 10.0
"""Seconds to wait for the daemon when none is given (containerd's client waits 10 s)."""
SOCKET_POLL = 0.05
"""Seconds between looks for a unix socket's file while waiting for the daemon."""
_TRANSPORT_MARKERS = ("failed to connect to all addresses", "Socket closed", "Connection reset",
                      "Broken pipe", "GOAWAY", "Stream removed", "recvmsg", "sendmsg", "End of TCP stream",
                      "Transport closed")
"""Texts of gRPC core's own ``UNAVAILABLE`` statuses (a connection failed or broke); not
"Connection refused" alone, which a daemon's own message about a registry or shim may hold
(gRPC says it after "failed to connect to all addresses")."""


class DaemonUnreachable(Unavailable):
    """The daemon is not there: never started, stopped, or died under a call (the message
    is always ``cannot connect to ADDRESS within Ns (is the daemon running?)``)."""

_lease: contextvars.ContextVar[str | None] = contextvars.ContextVar("client_lease", default=None)


def channel_target(address: str) -> str:
    """``unix:<path>`` for a socket path (``/run/x.sock`` or ``unix:///run/x.sock``),
    ``host:port`` for TCP (``tcp://`` dropped)."""
    if address.startswith("tcp://"):
        return address[len("tcp://"):]
    if address.startswith("unix://"):
        return "unix:" + address[len("unix://"):]
    if address.startswith("unix:") or address.startswith("/") or address.startswith("."):
        return address if address.startswith("unix:") else "unix:" + str(Path(address))
    return address


def is_unix(address: str) -> bool:
    return channel_target(address).startswith("unix:")


@dataclass(frozen=True)
class TLSConfig:
    """PEM files for a TLS TCP listener: ``ca`` to verify the server (None: the system
    roots), ``cert``/``key`` for a client certificate (both or neither), ``server_name`` to
    override the name checked in the server certificate."""

    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    server_name: str | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        def read(path: str | None) -> bytes | None:
            if path is None:
                return None
            try:
                return Path(path).read_bytes()
            except OSError as exc:
                raise Unavailable(f"cannot read TLS file {path}: {exc.strerror}") from exc

        if (self.cert is None) != (self.key is None):
            from ..errdefs import InvalidArgument

            raise InvalidArgument("a TLS client certificate needs both cert and key")
        return grpc.ssl_channel_credentials(read(self.ca), read(self.key), read(self.cert))


class Connection:
    """One gRPC channel plus the namespace (and lease, when set) sent with every call."""

    def __init__(self, address: str, namespace: str = namespaces.DEFAULT, timeout: float | None = None,
                 credentials: grpc.ChannelCredentials | None = None, options: list | None = None,
                 tls: TLSConfig | None = None) -> None:
        self.address = address
        self.namespace = namespace
        self.timeout = timeout
        opts = [("grpc.max_receive_message_length", 16 << 20), ("grpc.max_send_message_length", 16 << 20)]
        if is_unix(address):
            opts.append(("grpc.default_authority", "localhost"))
        if tls is not None:
            credentials = credentials or tls.credentials()
            if tls.server_name:
                opts.append(("grpc.ssl_target_name_override", tls.server_name))
        opts += list(options or [])
        target = channel_target(address)
        if credentials is not None:
            self.channel = grpc.aio.secure_channel(target, credentials, options=opts)
        else:
            self.channel = grpc.aio.insecure_channel(target, options=opts)

    def metadata(self, namespace: str | None = None) -> tuple[tuple[str, str], ...]:
        md = [(namespaces.GRPC_HEADER, namespace or self.namespace)]
        lease = _lease.get()
        if lease:
            md.append((LEASE_HEADER, lease))
        return tuple(md)

    async def wait_ready(self, timeout: float) -> None:
        """Wait for the channel to connect (for a unix socket, first for its file to exist).
        Raises :class:`DaemonUnreachable` after ``timeout`` s."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            # a channel asked to connect to a missing file backs off (1 s, 1.6 s, …) and would
            # notice the daemon late: poll for the file, then let gRPC connect
            while self._socket_missing():
                if loop.time() >= deadline:
                    raise TimeoutError
                await asyncio.sleep(min(SOCKET_POLL, max(deadline - loop.time(), 0.001)))
            await asyncio.wait_for(self.channel.channel_ready(), max(deadline - loop.time(), 0.001))
        except TimeoutError as exc:
            raise self.unreachable(timeout) from exc

    def unreachable(self, timeout: float | None = None) -> DaemonUnreachable:
        """The one error for a daemon that is not there (never started, stopped, or died
        under a call): ``cannot connect to ADDRESS within Ns (is the daemon running?)``."""
        if timeout is None:
            timeout = self.timeout or DEFAULT_TIMEOUT
        return DaemonUnreachable(f"cannot connect to {self.address} within {_seconds(timeout)}s "
                                 "(is the daemon running?)")

    async def connect(self, probe: Callable[[], Awaitable[Any]], timeout: float, retries: int = 3,
                      backoff: float = 0.2) -> Any:
        """Connect and run ``probe`` (one cheap call, e.g. Version), retrying while it fails
        with ``UNAVAILABLE`` — up to ``retries`` more times, waiting ``backoff`` seconds,
        doubling — all within ``timeout`` seconds. Returns what ``probe`` returned.

        Raises :class:`DaemonUnreachable` (an ``Unavailable``) naming the address when the
        daemon cannot be reached within ``timeout`` (a unix socket whose file appears
        meanwhile is connected to: a daemon still starting is waited for).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        attempt = 0
        while True:
            left = deadline - loop.time()
            try:
                await self.wait_ready(max(left, 0.001))
                return await asyncio.wait_for(probe(), max(deadline - loop.time(), 0.001))
            except (Unavailable, TimeoutError) as exc:
                last: BaseException = exc
            attempt += 1
            if attempt > retries or loop.time() + backoff >= deadline:
                raise self.unreachable(timeout) from last
            await asyncio.sleep(backoff)
            backoff *= 2

    async def lost(self, exc: grpc.RpcError) -> Unavailable:
        """The error to raise for ``exc``, a call that failed because the daemon went away
        (:func:`is_transport_failure`): waits up to the connect timeout for the daemon; if it
        is still gone, :meth:`unreachable`; if it is back, an ``Unavailable`` saying the call
        was cut (it may or may not have taken effect)."""
        timeout = self.timeout or DEFAULT_TIMEOUT
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            # the channel may still read READY for a moment after the daemon died: on a unix
            # socket, wait for a listener to accept a connection before saying it is back
            while not await self._unix_listener_answers():
                if asyncio.get_running_loop().time() >= deadline:
                    raise self.unreachable(timeout)
                await asyncio.sleep(SOCKET_POLL)
            await self.wait_ready(max(deadline - asyncio.get_running_loop().time(), 0.001))
        except DaemonUnreachable as gone:
            return gone
        return Unavailable(f"the connection to {self.address} broke during the call ({exc.details()}); "
                           "the daemon is answering again: check the state and retry")

    async def _unix_listener_answers(self) -> bool:
        """For a unix socket address, whether something accepts a connection there now; True
        for other addresses (gRPC's own state is all there is to go by)."""
        target = channel_target(self.address)
        if not target.startswith("unix:") or target.startswith("unix:@"):
            return True
        try:
            _, writer = await asyncio.open_unix_connection(target[len("unix:"):])
        except OSError:
            return False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True

    def _socket_missing(self) -> bool:
        """True when the address is a unix socket path and no file is there."""
        target = channel_target(self.address)
        if target.startswith("unix:") and not target.startswith("unix:@"):
            return not os.path.lexists(target[len("unix:"):])
        return False

    async def close(self) -> None:
        await self.channel.close()


class Stub:
    """``_images = Stub(images_pb2_grpc, "ImagesStub")`` in a class whose instances have a
    ``conn``: on an instance, that service's stub on the connection — made on first use
    (when the generated module, a :class:`~pycontainerd.lazy.LazyModule`, is imported), then
    kept on the instance."""

    def __init__(self, module: Any, name: str) -> None:
        self.module = module
        self.name = name

    def __set_name__(self, owner: type, attr: str) -> None:
        self.attr = attr

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        stub = obj.__dict__[self.attr] = getattr(self.module, self.name)(obj.conn.channel)
        return stub


def _seconds(value: float) -> str:
    """``1.9999986`` → ``"2"``, ``0.25`` → ``"0.25"``: a timeout as a user wrote it."""
    return f"{round(value, 2):g}"


def current_lease() -> str | None:
    """The lease id sent with calls made here (set by :func:`using_lease`), or None."""
    return _lease.get() or None


@contextlib.contextmanager
def using_lease(lease_id: str | None):
    """Send ``lease_id`` with every call made in this block (this task and its children)."""
    token = _lease.set(lease_id)
    try:
        yield
    finally:
        _lease.reset(token)


def is_transport_failure(exc: BaseException) -> bool:
    """True when ``exc`` is gRPC's own ``UNAVAILABLE`` for a connection that failed or broke
    (the daemon is gone), not an ``UNAVAILABLE`` status the daemon sent."""
    if not isinstance(exc, grpc.RpcError) or not hasattr(exc, "code"):
        return False
    details = exc.details() or ""
    return exc.code() == grpc.StatusCode.UNAVAILABLE and any(m in details for m in _TRANSPORT_MARKERS)


def never_sent(exc: grpc.RpcError) -> bool:
    """True when gRPC failed the call before sending it (no connection could be made)."""
    return (exc.details() or "").startswith("failed to connect to all addresses")


def _connection_of(obj: Any) -> Connection | None:
    """The :class:`Connection` a client object calls through (``.conn``, or its client's)."""
    conn = getattr(obj, "conn", None)
    for attr in ("_client", "client"):
        if conn is None:
            conn = getattr(getattr(obj, attr, None), "conn", None)
    return conn if isinstance(conn, Connection) else None


def mapped(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator for methods of client objects: turn ``grpc.RpcError`` raised by an async
    call into the typed error. A call that never reached the daemon because it is gone is
    retried once if the daemon answers again within the connect timeout; otherwise it raises
    :meth:`Connection.unreachable`."""

    @functools.wraps(fn)
    async def wrapper(*args, **kwargs):
        try:
            return await fn(*args, **kwargs)
        except grpc.RpcError as exc:
            conn = _connection_of(args[0]) if args else None
            if conn is None or not is_transport_failure(exc):
                raise from_rpc_error(exc) from exc
            error = await conn.lost(exc)
            if isinstance(error, DaemonUnreachable) or not never_sent(exc):
                raise error from exc
        try:  # the daemon is back and the first call never left: send it again, once
            return await fn(*args, **kwargs)
        except grpc.RpcError as exc:
            if is_transport_failure(exc):
                raise conn.unreachable() from exc
            raise from_rpc_error(exc) from exc

    return wrapper


async def mapped_stream(stream, conn: Connection | None = None) -> AsyncIterator[Any]:
    """Iterate a server stream, mapping errors (a lost daemon as :meth:`Connection.lost`
    says, when ``conn`` is given)."""
    try:
        async for item in stream:
            yield item
    except grpc.RpcError as exc:
        if conn is not None and is_transport_failure(exc):
            raise await conn.lost(exc) from exc
        raise from_rpc_error(exc) from exc
