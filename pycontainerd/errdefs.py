"""Typed errors of the core, after containerd's ``errdefs`` package.

Core code raises these (with context: ``raise NotFound(f"namespace {name!r}")``); only the
gRPC edge turns them into status codes (:mod:`pycontainerd.wire.errors`) and the client
turns status codes back into them. Each class carries the gRPC code name containerd's
``errgrpc.ToGRPC`` uses for the matching sentinel, as a plain string so that the core does
not import grpc.

The message format follows containerd's: the context first, the class's ``suffix`` last,
e.g. ``namespace "x": not found`` — clients (and people) read those strings.
"""

from __future__ import annotations

import json


class ContainerdError(Exception):
    """Base of every error a client can cause or observe.

    ``code`` is the name of a ``grpc.StatusCode`` member; ``suffix`` is appended to the
    message the way containerd wraps its sentinels (``"<context>: not found"``).
    """

    code = "UNKNOWN"
    suffix = "unknown"

    def __init__(self, message: str = "") -> None:
        self.context = message
        super().__init__(f"{message}: {self.suffix}" if message else self.suffix)


class InvalidArgument(ContainerdError):
    """Malformed input: a bad name, filter, digest, field path or label (``INVALID_ARGUMENT``)."""

    code = "INVALID_ARGUMENT"
    suffix = "invalid argument"


class NotFound(ContainerdError):
    """The named object does not exist in this namespace (``NOT_FOUND``)."""

    code = "NOT_FOUND"
    suffix = "not found"


class AlreadyExists(ContainerdError):
    """An object with that name already exists (``ALREADY_EXISTS``)."""

    code = "ALREADY_EXISTS"
    suffix = "already exists"


class FailedPrecondition(ContainerdError):
    """The object is not in a state that allows the call, e.g. a non-empty namespace
    or a running task (``FAILED_PRECONDITION``)."""

    code = "FAILED_PRECONDITION"
    suffix = "failed precondition"


class Unavailable(ContainerdError):
    """A dependency (shim, plugin, registry) cannot be reached now (``UNAVAILABLE``)."""

    code = "UNAVAILABLE"
    suffix = "unavailable"


class NotImplementedYet(ContainerdError):
    """The call is part of the API but not supported here (``UNIMPLEMENTED``)."""

    code = "UNIMPLEMENTED"
    suffix = "not implemented"


class Aborted(ContainerdError):
    """A concurrent change won; retry (``ABORTED``)."""

    code = "ABORTED"
    suffix = "aborted"


class ResourceExhausted(ContainerdError):
    """Out of disk, memory or another bounded resource (``RESOURCE_EXHAUSTED``)."""

    code = "RESOURCE_EXHAUSTED"
    suffix = "resource exhausted"


class OutOfRange(ContainerdError):
    """An offset outside what the object holds: a write not at the ingest's current offset,
    or a read past the end of a blob (``OUT_OF_RANGE``, as containerd returns for both)."""

    code = "OUT_OF_RANGE"
    suffix = "out of range"


class Canceled(ContainerdError):
    """The caller went away (``CANCELLED``)."""

    code = "CANCELLED"
    suffix = "context canceled"


class DeadlineExceeded(ContainerdError):
    """The call's deadline passed (``DEADLINE_EXCEEDED``)."""

    code = "DEADLINE_EXCEEDED"
    suffix = "context deadline exceeded"


class Unknown(ContainerdError):
    """An error containerd reports as a plain error (``UNKNOWN``), whose message is all there
    is: no sentinel suffix (the CRI's ``container is in CONTAINER_EXITED state``)."""

    def __init__(self, message: str = "") -> None:
        self.context = message
        Exception.__init__(self, message or self.suffix)


class PluginSkipped(Exception):
    """Raised by a plugin's init to opt out cleanly (containerd's ``ErrSkipPlugin``).

    The message always contains ``"skip plugin"``: that is how ``ctr plugins ls`` tells a
    skipped plugin (status ``skip``) from a failed one (status ``error``).
    """

    def __init__(self, reason: str = "") -> None:
        super().__init__(f"{reason}: skip plugin" if reason else "skip plugin")


BY_CODE: dict[str, type[ContainerdError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        FailedPrecondition,
        Unavailable,
        NotImplementedYet,
        Aborted,
        ResourceExhausted,
        OutOfRange,
        Canceled,
        DeadlineExceeded,
    )
}
"""Error class for each gRPC code name, for clients mapping statuses back."""


def quote(value: object) -> str:
    """Quote a name for an error message the way containerd's ``%q`` does (``"name"``)."""
    return json.dumps(str(value), ensure_ascii=False)


def wrap(exc: ContainerdError, context: str) -> ContainerdError:
    """``exc`` with ``context`` in front of its message (containerd's ``fmt.Errorf("…: %w",
    err)``): the same class, so the same status code."""
    out = type(exc).__new__(type(exc))
    out.__dict__.update(exc.__dict__)
    Exception.__init__(out, f"{context}: {exc}")
    out.context = f"{context}: {exc.context}" if getattr(exc, "context", "") else context
    return out
