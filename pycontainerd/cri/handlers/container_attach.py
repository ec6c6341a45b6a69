"""``Attach``: a URL on the streaming server where the client joins a RUNNING container's
own stdio (output as it is produced; input only when the container was created with
``stdin``; a tty only when it was created with ``tty``).

Checks (containerd's): the container exists (NOT_FOUND) and is RUNNING
(FAILED_PRECONDITION); at least one stream is asked for, no stderr with a tty
(INVALID_ARGUMENT). As in containerd, ``stdin`` for a container created without stdin is
ignored (nothing reaches it), and ``tty`` only decides whether resizes are forwarded.
"""

from __future__ import annotations

from ...api.cri.runtime.v1 import api_pb2 as cri
from ..service import CRIService
from ..state import ContainerOp, check_container_op
from ..streaming.tokens import AttachRequest
from .container_exec import check_streams


async def attach(svc: CRIService, req: cri.AttachRequest) -> cri.AttachResponse:
    ct = svc.containers.get(req.container_id)
    check_container_op(ContainerOp.ATTACH, ct.id, ct.state)
    check_streams(req.stdin, req.stdout, req.stderr, req.tty)
    url = await svc.streaming.url("attach", AttachRequest(ct.id, req.tty, req.stdin, req.stdout, req.stderr))
    return cri.AttachResponse(url=url)


__all__ = ["attach"]
