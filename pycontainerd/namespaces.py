"""The namespace of the current request, carried in a context variable.

Like containerd, the namespace is never a function parameter of the stores: a server
interceptor reads the gRPC metadata key :data:`GRPC_HEADER` (first value wins, as in
containerd's ``namespaces.fromGRPCHeader``) into :data:`current`, and every store asks
:func:`required` for it.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

from . import identifiers
from .errdefs import FailedPrecondition, InvalidArgument

GRPC_HEADER = "containerd-namespace"
"""gRPC metadata key that carries the namespace (containerd's ``namespaces.GRPCHeader``)."""
DEFAULT = "default"
ENV_VAR = "CONTAINERD_NAMESPACE"

current: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "containerd_namespace", default=None
)


def get() -> str | None:
    """The namespace of this request, unvalidated, or None when the client sent none."""
    return current.get()


def required() -> str:
    """The validated namespace of this request.

    Raises:
        FailedPrecondition: no namespace was given (``namespace is required``).
        InvalidArgument: the name is not a valid identifier.
    """
    name = current.get()
    if not name:
        raise FailedPrecondition("namespace is required")
    try:
        return identifiers.validate(name)
    except InvalidArgument as exc:
        raise InvalidArgument(f"namespace validation: {exc.context}") from exc


@contextlib.contextmanager
def using(name: str | None) -> Iterator[None]:
    """Run a block with ``name`` as the current namespace (in-process callers, tests)."""
    token = current.set(name)
    try:
        yield
    finally:
        current.reset(token)
