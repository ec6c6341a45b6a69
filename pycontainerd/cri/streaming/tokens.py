"""Single-use, short-lived tokens for the URLs that Exec, Attach and PortForward return
(kubelet's request cache: a token lives one minute, is consumed by the first connection
that presents it, and at most 1,000 are outstanding)."""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from ...errdefs import ResourceExhausted

TOKEN_TTL = 60.0
MAX_IN_FLIGHT = 1000


@dataclass(frozen=True)
class ExecRequest:
    container_id: str
    cmd: tuple[str, ...]
    tty: bool
    stdin: bool
    stdout: bool
    stderr: bool


@dataclass(frozen=True)
class AttachRequest:
    container_id: str
    tty: bool
    stdin: bool
    stdout: bool
    stderr: bool


@dataclass(frozen=True)
class PortForwardRequest:
    sandbox_id: str
    ports: tuple[int, ...]


Request = ExecRequest | AttachRequest | PortForwardRequest


class TokenCache:
    """token → request, each valid for ``ttl`` seconds and one :meth:`consume`.

    ``clock`` is injectable (monotonic seconds) for tests.
    """

    def __init__(self, ttl: float = TOKEN_TTL, max_in_flight: int = MAX_IN_FLIGHT,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.max_in_flight = max_in_flight
        self.clock = clock
        self._items: OrderedDict[str, tuple[float, Request]] = OrderedDict()

    def _expire(self) -> None:
        now = self.clock()
        while self._items:
            token, (deadline, _) = next(iter(self._items.items()))
            if deadline > now:
                break
            del self._items[token]

    def insert(self, request: Request) -> str:
        """A new token for ``request``. Raises :class:`ResourceExhausted` when too many are
        outstanding."""
        self._expire()
        if len(self._items) >= self.max_in_flight:
            raise ResourceExhausted(f"too many streaming requests in flight ({self.max_in_flight})")
        token = secrets.token_urlsafe(8)
        while token in self._items:
            token = secrets.token_urlsafe(8)
        self._items[token] = (self.clock() + self.ttl, request)
        return token

    def consume(self, token: str) -> Request | None:
        """The request of ``token`` (removed); None when unknown, used or expired."""
        self._expire()
        item = self._items.pop(token, None)
        return None if item is None else item[1]

    def __len__(self) -> int:
        self._expire()
        return len(self._items)


__all__ = ["AttachRequest", "ExecRequest", "PortForwardRequest", "Request", "TokenCache"]
