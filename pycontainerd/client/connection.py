"""The client's gRPC channel: address forms, request metadata, and error mapping."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
from collections.abc import AsyncIterator, Callable
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
    ``host:port`` unchanged for TCP."""
    if address.startswith("unix://"):
        return "unix:" + address[len("unix://"):]
    if address.startswith("unix:") or address.startswith("/") or address.startswith("."):
        return address if address.startswith("unix:") else "unix:" + str(Path(address))
    return address


class Connection:
    """One gRPC channel plus the namespace (and lease, when set) sent with every call."""

    def __init__(self, address: str, namespace: str = namespaces.DEFAULT, timeout: float | None = None,
                 credentials: grpc.ChannelCredentials | None = None, options: list | None = None) -> None:
        self.address = address
        self.namespace = namespace
        self.timeout = timeout
        opts = [("grpc.max_receive_message_length", 16 << 20), ("grpc.max_send_message_length", 16 << 20),
                ("grpc.default_authority", "localhost")] + list(options or [])
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
            raise Unavailable(f"cannot connect to {self.address} within {timeout}s") from exc

    async def close(self) -> None:
        await self.channel.close()


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
