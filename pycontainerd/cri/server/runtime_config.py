"""``RuntimeConfig`` (the cgroup driver: cgroupfs), ``UpdateRuntimeConfig`` (the pod CIDR
is recorded), ``UpdatePodSandboxResources`` (best effort: accepted for a known sandbox)."""

from __future__ import annotations

from ...api.cri.runtime.v1 import api_pb2 as cri


async def runtime_config(c, req: cri.RuntimeConfigRequest) -> cri.RuntimeConfigResponse:
    return cri.RuntimeConfigResponse(linux=cri.LinuxRuntimeConfiguration(cgroup_driver=cri.CGROUPFS))


async def update_runtime_config(c, req: cri.UpdateRuntimeConfigRequest) -> cri.UpdateRuntimeConfigResponse:
    cidr = req.runtime_config.network_config.pod_cidr
    if cidr:
        c.pod_cidr = cidr
    return cri.UpdateRuntimeConfigResponse()


async def update_pod_sandbox_resources(c, req: cri.UpdatePodSandboxResourcesRequest
                                       ) -> cri.UpdatePodSandboxResourcesResponse:
    await c.ensure_started()
    c.sandboxes.get(req.pod_sandbox_id)
    return cri.UpdatePodSandboxResourcesResponse()
