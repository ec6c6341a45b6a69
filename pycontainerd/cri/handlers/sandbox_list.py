"""``ListPodSandbox`` (and ``StreamPodSandboxes``): sandboxes matching the filter."""

from __future__ import annotations

from collections.abc import AsyncIterator

from ...api.cri.runtime.v1 import api_pb2 as cri
from ..filters import chunks, filter_sandboxes
from ..service import CRIService
from ..store import Sandbox


def sandbox_pb(sb: Sandbox) -> cri.PodSandbox:
    out = cri.PodSandbox(id=sb.id, metadata=sb.config.metadata, state=sb.state.to_cri(), created_at=sb.created_at,
                         runtime_handler=sb.runtime_handler)
    out.labels.update(sb.config.labels)
    out.annotations.update(sb.config.annotations)
    return out


def _list(svc: CRIService, f: cri.PodSandboxFilter | None) -> list[cri.PodSandbox]:
    return [sandbox_pb(sb) for sb in filter_sandboxes(svc.sandboxes.list(), f, svc.sandboxes.resolve)]


async def list_pod_sandbox(svc: CRIService, req: cri.ListPodSandboxRequest) -> cri.ListPodSandboxResponse:
    return cri.ListPodSandboxResponse(items=_list(svc, req.filter if req.HasField("filter") else None))


async def stream_pod_sandboxes(svc: CRIService, req: cri.StreamPodSandboxesRequest) -> AsyncIterator[cri.StreamPodSandboxesResponse]:
    for chunk in chunks(_list(svc, req.filter if req.HasField("filter") else None)):
        yield cri.StreamPodSandboxesResponse(pod_sandboxes=chunk)
