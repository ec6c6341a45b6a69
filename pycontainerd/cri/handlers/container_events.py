"""``GetContainerEvents``: a stream of container (and sandbox) lifecycle events from now on,
until the caller goes away or the daemon stops."""

from __future__ import annotations

from collections.abc import AsyncIterator

from ...api.cri.runtime.v1 import api_pb2 as cri
from ..service import CRIService


async def get_container_events(svc: CRIService, req: cri.GetEventsRequest) -> AsyncIterator[cri.ContainerEventResponse]:
    async for ev in svc.events.subscribe():
        yield ev
