"""What the CRI's own machinery — task exits (:mod:`.exits`), recovery (:mod:`.recovery`),
image volumes (:mod:`.image_volume`) — needs of the CRI core: :class:`CRIHost`, which
:class:`pycontainerd.cri.service.CRIService` fulfils. They name this protocol, not the
service, so the service can own them and no import runs in a circle."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Protocol

from .config import CRIConfig
from .daemon import Daemon
from .images import Images
from .store import Container, Sandbox, Store


class CRIHost(Protocol):
    """The shared state and helpers of the CRI core (see the module doc)."""

    config: CRIConfig
    daemon: Daemon
    images: Images
    root: str
    state: str
    sandboxes: Store[Sandbox]
    containers: Store[Container]

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task:
        """Run ``coro`` in the background, outside the calling context."""

    def save(self, obj: Sandbox | Container) -> None:
        """Write ``obj``'s status file."""

    def publish(self, event_type: int, obj: Sandbox | Container) -> None:
        """Send a CRI container event for ``obj``."""

    def sandbox_root(self, sid: str) -> str: ...

    def container_root(self, cid: str) -> str: ...
