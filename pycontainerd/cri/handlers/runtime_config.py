"""``RuntimeConfig`` (the cgroup driver: cgroupfs), ``UpdateRuntimeConfig`` (the pod CIDR
is recorded), ``UpdatePodSandboxResources`` (best effort: accepted for a known sandbox)."""

from __future__ import annotations

from ...api.cri.runtime.v1 import api_pb2 as cri
from ..service import CRIService


async def runtime_config(svc: CRIService, req: cri.RuntimeConfigRequest) -> cri.RuntimeConfigResponse:
    return cri.RuntimeConfigResponse(linux=cri.LinuxRuntimeConfiguration(cgroup_driver=cri.CGROUPFS))


async def update_runtime_config(svc: CRIService, req: cri.UpdateRuntimeConfigRequest) -> cri.UpdateRuntimeConfigResponse:
    cidr = req.runtime_config.network_config.pod_cidr
    if cidr:
        svc.pod_cidr = cidr
    return cri.UpdateRuntimeConfigResponse()


async def update_pod_sandbox_resources(svc: CRIService, req: cri.UpdatePodSandboxResourcesRequest
                                       ) -> cri.UpdatePodSandboxResourcesResponse:
    svc.sandboxes.get(req.pod_sandbox_id)
    return cri.UpdatePodSandboxResourcesResponse()
