"""``PortForward``: a URL on the streaming server through which the client reaches ports
of the pod on its localhost (inside the pod's network namespace).

Checks: the sandbox exists (NOT_FOUND) and is READY (FAILED_PRECONDITION); every port is
in 1-65535 (INVALID_ARGUMENT). An empty port list lets the client name any port (what
kubelet asks for over SPDY); a non-empty one limits the connections to those ports.
"""

from __future__ import annotations

from ...api.cri.runtime.v1 import api_pb2 as cri
from ...errdefs import InvalidArgument, NotFound, quote
from ..service import CRIService
from ..state import SandboxOp, check_sandbox_op
from ..streaming.tokens import PortForwardRequest


async def port_forward(svc: CRIService, req: cri.PortForwardRequest) -> cri.PortForwardResponse:
    sb = svc.sandboxes.find(req.pod_sandbox_id)
    if sb is None:
        raise NotFound(f"failed to find sandbox {quote(req.pod_sandbox_id)}")
    check_sandbox_op(SandboxOp.PORT_FORWARD, sb.id, sb.state)
    bad = [x for x in req.port if not 0 < x < 65536]
    if bad:
        raise InvalidArgument(f"invalid port(s) {bad}: ports are 1-65535")
    url = await svc.streaming.url("portforward", PortForwardRequest(sb.id, tuple(req.port)))
    return cri.PortForwardResponse(url=url)


__all__ = ["port_forward"]
