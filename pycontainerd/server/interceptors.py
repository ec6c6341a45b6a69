"""The one server interceptor: per-request namespace, request id, logging, error mapping.

For every RPC it

* reads the namespace from metadata key ``containerd-namespace`` (first value, as containerd)
  into :data:`pycontainerd.namespaces.current`, unvalidated: as containerd, a call that
  works in a namespace validates it (:func:`pycontainerd.namespaces.required`, an invalid
  name is ``INVALID_ARGUMENT``), and ``Version`` or ``Namespaces.List`` answer whatever it is;
* reads the lease id from metadata key ``containerd-lease`` (first value) into
  :data:`pycontainerd.leases_context.current`;
* binds ``request_id``, ``method`` and ``namespace`` into structlog's context;
* turns a :class:`~pycontainerd.errdefs.ContainerdError` into the matching status
  (:mod:`.errors`), and any other exception into ``UNKNOWN`` after logging it with its
  traceback — the daemon never dies of a bad request.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
import os
import time

import grpc
import structlog

from .. import leases_context, namespaces
from ..errdefs import ContainerdError
from ..log import enabled, get_logger
from ..metrics import observe_rpc
from ..wire.errors import code_of

log = get_logger("grpc")


_ID_PREFIX = os.urandom(4).hex()
_ID_COUNTER = itertools.count(1)


def _request_id() -> str:
    """16 hex digits, unique in this process and (random prefix) across its restarts —
    a counter rather than ``uuid4``: no system call per request."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFFFFFF:08x}"


def _header(metadata, name: str) -> str | None:
    for key, value in metadata or ():
        if key == name:
            return value
    return None


async def _fail(context, exc: BaseException) -> None:
    if isinstance(exc, ContainerdError):
        code = code_of(exc)
        if enabled(logging.DEBUG):
            log.debug("rpc failed", code=code.name, error=str(exc))
        await context.abort(code, str(exc))
    log.error("rpc crashed", error=repr(exc), exc_info=exc)
    await context.abort(grpc.StatusCode.UNKNOWN, f"internal error: {exc}")


class _rpc:
    """The scope of one call, unary or streaming: context variables and log bindings in,
    errors mapped to statuses, one ``rpc`` log line out. A class rather than a generator-based context
    manager: this runs for every call (it was a third of the daemon's Python time per
    small read)."""

    __slots__ = ("method", "ns", "lease", "context", "tokens", "bound", "started")

    def __init__(self, method: str, ns: str | None, lease: str | None, context) -> None:
        self.method, self.ns, self.lease, self.context = method, ns, lease, context

    async def __aenter__(self) -> _rpc:
        self.tokens = namespaces.current.set(self.ns), leases_context.current.set(self.lease)
        if self.ns:
            self.bound = structlog.contextvars.bind_contextvars(request_id=_request_id(), method=self.method,
                                                                namespace=self.ns)
        else:
            self.bound = structlog.contextvars.bind_contextvars(request_id=_request_id(), method=self.method)
        self.started = time.monotonic()
        return self

    async def __aexit__(self, exc_type, exc, tb) -> bool:
        code = "OK"
        try:
            if exc_type is None:
                return False
            if issubclass(exc_type, (GeneratorExit, asyncio.CancelledError)):
                code = "CANCELLED"
            elif issubclass(exc_type, grpc.aio.AbortError):  # context.abort() by a handler: already a status
                code = "ABORTED_BY_HANDLER"
            elif issubclass(exc_type, Exception):
                code = "ERROR"
                await _fail(self.context, exc)
            return False
        finally:
            if enabled(logging.DEBUG):  # the level can change at run time: asked per call, cheaply
                log.debug("rpc", code=code, ms=round((time.monotonic() - self.started) * 1000, 3))
            observe_rpc(self.method, code, self.context, self.started)  # Prometheus counters (server.metrics)
            # A stream the client stopped reading is finalised from another context, where
            # these tokens cannot be reset; that context dies with the call anyway.
            with contextlib.suppress(ValueError):
                structlog.contextvars.reset_contextvars(**self.bound)
            with contextlib.suppress(ValueError):
                namespaces.current.reset(self.tokens[0])
            with contextlib.suppress(ValueError):
                leases_context.current.reset(self.tokens[1])


class _Undecodable:
    """A request message that did not parse. grpc-go (so containerd) answers it with
    ``INTERNAL`` "grpc: error unmarshalling request"; grpcio's own answer to a raising
    deserializer would be ``UNKNOWN``, so the deserializer hands this to the handler."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    async def abort(self, context) -> None:
        await context.abort(grpc.StatusCode.INTERNAL, f"grpc: error unmarshalling request: {self.exc}")


def _lenient(deserializer):
    if deserializer is None:
        return None

    def parse(data: bytes):
        try:
            return deserializer(data)
        except Exception as exc:  # DecodeError, or whatever a custom parser raises
            return _Undecodable(exc)

    return parse


class RequestInterceptor(grpc.aio.ServerInterceptor):
    """Wraps each method's handler once (cached per method); the namespace and lease
    headers are read per call from the call's own metadata."""

    def __init__(self) -> None:
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        if handler is None:
            return None
        method = details.method
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = _wrap(method, handler)
        self._wrapped[method] = (handler, wrapped)
        return wrapped


def _wrap(method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    def headers(context) -> tuple[str | None, str | None]:
        md = context.invocation_metadata()
        return _header(md, namespaces.GRPC_HEADER), _header(md, leases_context.GRPC_HEADER)

    def wrap_unary(behavior):
        async def call(request_or_iterator, context):
            async with _rpc(method, *headers(context), context):
                if isinstance(request_or_iterator, _Undecodable):
                    await request_or_iterator.abort(context)
                return await behavior(request_or_iterator, context)

        return call

    def wrap_stream(behavior):
        is_gen = inspect.isasyncgenfunction(behavior)

        async def call(request_or_iterator, context):
            async with _rpc(method, *headers(context), context):
                if isinstance(request_or_iterator, _Undecodable):
                    await request_or_iterator.abort(context)
                if is_gen:
                    async for item in behavior(request_or_iterator, context):
                        yield item
                else:
                    await behavior(request_or_iterator, context)

        return call

    kwargs = dict(
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )
    single = dict(kwargs, request_deserializer=_lenient(handler.request_deserializer))
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(wrap_unary(handler.unary_unary), **single)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(wrap_unary(handler.stream_unary), **kwargs)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(wrap_stream(handler.unary_stream), **single)
    return grpc.stream_stream_rpc_method_handler(wrap_stream(handler.stream_stream), **kwargs)
