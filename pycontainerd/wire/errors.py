"""Core errors ⇄ gRPC status codes, in one place (containerd's ``errgrpc``).

The server side raises nothing itself: servicers let :class:`~pycontainerd.errdefs.ContainerdError`
propagate and the request interceptor aborts the call with the matching code and the
error's message. Clients use :func:`from_rpc_error` to get the typed error back.
"""

from __future__ import annotations

import grpc

from .. import errdefs

TO_GRPC: dict[type[errdefs.ContainerdError], grpc.StatusCode] = {
    cls: getattr(grpc.StatusCode, code) for code, cls in errdefs.BY_CODE.items()
}


def code_of(exc: errdefs.ContainerdError) -> grpc.StatusCode:
    """The status code for ``exc`` (its most specific mapped class)."""
    for cls in type(exc).__mro__:
        if cls in TO_GRPC:
            return TO_GRPC[cls]
    return grpc.StatusCode.UNKNOWN


def from_rpc_error(exc: grpc.RpcError) -> Exception:
    """The typed error for an ``RpcError`` (the message is kept as sent), or ``exc`` itself
    when the code has no core class."""
    code = exc.code() if hasattr(exc, "code") else None
    cls = errdefs.BY_CODE.get(code.name) if code is not None else None
    if cls is None:
        return exc
    err = cls.__new__(cls)
    Exception.__init__(err, exc.details())
    err.context = exc.details()
    return err
