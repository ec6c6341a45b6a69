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
from ..services.errors import from_rpc_error

LEASE_HEADER = "containerd-lease"
"""gRPC metadata key carrying the lease that protects what a request creates."""

T = TypeVar("T")

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
        """Wait for the channel to connect. Raises :class:`Unavailable` after ``timeout`` s."""
        try:
            await asyncio.wait_for(self.channel.channel_ready(), timeout)
        except TimeoutError as exc:
            raise Unavailable(f"cannot connect to {self.address} within {_seconds(timeout)}s") from exc

    async def connect(self, probe: Callable[[], Awaitable[Any]], timeout: float, retries: int = 3,
                      backoff: float = 0.2) -> Any:
        """Connect and run ``probe`` (one cheap call, e.g. Version), retrying while it fails
        with ``UNAVAILABLE`` — up to ``retries`` more times, waiting ``backoff`` seconds,
        doubling — all within ``timeout`` seconds. Returns what ``probe`` returned.

        Raises :class:`Unavailable` naming the address when the daemon cannot be reached —
        at once, without waiting, when the address is a unix socket path with no file there
        (``no socket at PATH (is the daemon running?)``).
        """
        self._check_socket()
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
                self._check_socket()  # it went away meanwhile
                raise Unavailable(f"cannot connect to {self.address} within {_seconds(timeout)}s "
                                  "(is the daemon running?)") from last
            await asyncio.sleep(backoff)
            backoff *= 2

    def _check_socket(self) -> None:
        """Raise :class:`Unavailable` when the address is a unix socket path that does not exist."""
        target = channel_target(self.address)
        if target.startswith("unix:") and not target.startswith("unix:@"):
            path = target[len("unix:"):]
            if not os.path.lexists(path):
                raise Unavailable(f"no socket at {path} (is the daemon running?)")

    async def close(self) -> None:
        await self.channel.close()


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


def mapped(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator: turn ``grpc.RpcError`` raised by an async call into the typed error."""

    @functools.wraps(fn)
    async def wrapper(*args, **kwargs):
        try:
            return await fn(*args, **kwargs)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc

    return wrapper


async def mapped_stream(stream) -> AsyncIterator[Any]:
    """Iterate a server stream, mapping errors."""
    try:
        async for item in stream:
            yield item
    except grpc.RpcError as exc:
        raise from_rpc_error(exc) from exc
