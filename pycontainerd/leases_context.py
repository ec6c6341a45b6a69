"""The lease of the current request, carried in a context variable.

A client puts a lease id in gRPC metadata key :data:`GRPC_HEADER` (containerd's
``leases.GRPCHeader``); the server interceptor copies it into :data:`current` (first value
wins), and stores that create resources (content blobs and ingests, snapshots, images)
record that the lease holds them, in the same transaction. No lease in the context means
nothing is recorded. The lease records themselves belong to the leases store.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

GRPC_HEADER = "containerd-lease"
"""gRPC metadata key that carries the lease id."""

current: contextvars.ContextVar[str | None] = contextvars.ContextVar("containerd_lease", default=None)


def get() -> str | None:
    """The lease id of this request, or None when the client sent none."""
    return current.get() or None


@contextlib.contextmanager
def using(lease_id: str | None) -> Iterator[None]:
    """Run a block with ``lease_id`` as the current lease (in-process callers, tests)."""
    token = current.set(lease_id)
    try:
        yield
    finally:
        current.reset(token)
