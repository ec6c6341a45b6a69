"""Registry errors that are not one of errdefs' plain sentinels.

:class:`UnexpectedStatus` (a status the protocol step does not expect) and
:class:`Unauthorized` (401/403 once authentication was tried, or no way to authenticate)
report gRPC code ``UNKNOWN``: containerd 1.6 has no errdefs sentinel for either, so
``errgrpc.ToGRPC`` sends them as ``Unknown`` and clients see the message only. A
:class:`DigestMismatch` is a ``FailedPrecondition`` (content does not match its
descriptor), as containerd's content store reports it.
"""

from __future__ import annotations

from pycontainerd.errdefs import ContainerdError, FailedPrecondition

BODY_EXCERPT = 64_000
"""How much of an error response body is kept (containerd keeps 64 KB)."""


class UnexpectedStatus(ContainerdError):
    """The registry answered with a status this step cannot handle.

    ``status_code``, ``method``, ``url`` and ``body`` (at most 64 KB) describe the response;
    ``registry_errors`` holds the ``errors`` array of an OCI error body, when there is one.
    """

    code = "UNKNOWN"
    suffix = "unexpected status"

    def __init__(
        self,
        message: str = "",
        *,
        status_code: int = 0,
        method: str = "",
        url: str = "",
        body: bytes = b"",
        registry_errors: list[dict] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.method = method
        self.url = url
        self.body = body[:BODY_EXCERPT]
        self.registry_errors = registry_errors or []


class Unauthorized(UnexpectedStatus):
    """The registry refused us: no usable credentials, wrong credentials, or no access.

    Sent as gRPC ``UNKNOWN`` like containerd 1.6 (see module doc); the message says
    ``authorization failed`` as containerd's ``ErrInvalidAuthorization`` does.
    """

    suffix = "authorization failed"


class DigestMismatch(FailedPrecondition):
    """Fetched content does not match the descriptor's size or digest."""
