"""``UpdateContainerResources``: the new resources go into the container's spec (record
updated) and, while it runs, to its cgroup (``runc update``); a failed update leaves the
old spec. Only CREATED or RUNNING containers (FAILED_PRECONDITION otherwise)."""

from __future__ import annotations

import copy
import dataclasses

from ...api.cri.runtime.v1 import api_pb2 as cri
from ...oci import opts as oci_opts
from ...oci import spec as oci_spec
from ..daemon import NAMESPACE
from ..service import CRIService
from ..spec import linux_resources, resources_from_spec, resources_opts
from ..state import ContainerOp, ContainerState, check_container_op
from ..util import hugetlb_controller_available, swap_controller_available


async def update_container_resources(svc: CRIService, req: cri.UpdateContainerResourcesRequest
                                     ) -> cri.UpdateContainerResourcesResponse:
    ct = svc.containers.get(req.container_id)
    async with ct.lock:
        check_container_op(ContainerOp.UPDATE, ct.id, ct.state)
        if not req.HasField("linux"):
            return cri.UpdateContainerResourcesResponse()
        old = ct.spec
        new = copy.deepcopy(old)
        ctx = oci_opts.SpecContext(NAMESPACE, ct.id)
        oci_opts.apply(new, ctx, *resources_opts(req.linux, swap=swap_controller_available(),
                                                 hugetlb=hugetlb_controller_available()))
        record = await svc.daemon.get_container(ct.id)
        await svc.daemon.update_container(dataclasses.replace(record, spec=oci_spec.to_any(new)), "spec")
        if ct.state is ContainerState.RUNNING:
            try:
                await svc.daemon.update_task(ct.id, linux_resources(new))
            except BaseException:
                await svc.daemon.update_container(dataclasses.replace(record, spec=oci_spec.to_any(old)), "spec")
                raise
        ct.spec = new
        ct.resources = resources_from_spec(new)
        svc.save(ct)
    return cri.UpdateContainerResourcesResponse()
