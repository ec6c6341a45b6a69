"""``ReopenContainerLog``: close and reopen the log file of a RUNNING container (after the
kubelet rotated it); FAILED_PRECONDITION when it is not running, and then no new file."""

from __future__ import annotations

from ...api.cri.runtime.v1 import api_pb2 as cri
from ..service import CRIService
from ..state import ContainerOp, check_container_op


async def reopen_container_log(svc: CRIService, req: cri.ReopenContainerLogRequest) -> cri.ReopenContainerLogResponse:
    ct = svc.containers.get(req.container_id)
    check_container_op(ContainerOp.REOPEN_LOG, ct.id, ct.state)
    if ct.io is not None:
        ct.io.reopen_log()
    return cri.ReopenContainerLogResponse()
