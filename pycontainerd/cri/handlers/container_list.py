"""``ListContainers`` (and ``StreamContainers``): containers matching the filter."""

from __future__ import annotations

from collections.abc import AsyncIterator

from ...api.cri.runtime.v1 import api_pb2 as cri
from ..filters import chunks, filter_containers
from ..service import CRIService
from ..store import Container


def container_pb(ct: Container) -> cri.Container:
    out = cri.Container(id=ct.id, pod_sandbox_id=ct.sandbox_id, metadata=ct.config.metadata,
                        image=cri.ImageSpec(image=ct.image_ref, annotations=ct.config.image.annotations),
                        image_ref=ct.image_id, image_id=ct.image_id, state=ct.state.to_cri(),
                        created_at=ct.created_at)
    out.labels.update(ct.config.labels)
    out.annotations.update(ct.config.annotations)
    return out


def _list(svc: CRIService, f: cri.ContainerFilter | None) -> list[cri.Container]:
    items = filter_containers(svc.containers.list(), f, svc.containers.resolve, svc.sandboxes.resolve)
    return [container_pb(ct) for ct in items]


async def list_containers(svc: CRIService, req: cri.ListContainersRequest) -> cri.ListContainersResponse:
    return cri.ListContainersResponse(containers=_list(svc, req.filter if req.HasField("filter") else None))


async def stream_containers(svc: CRIService, req: cri.StreamContainersRequest) -> AsyncIterator[cri.StreamContainersResponse]:
    for chunk in chunks(_list(svc, req.filter if req.HasField("filter") else None)):
        yield cri.StreamContainersResponse(containers=chunk)
