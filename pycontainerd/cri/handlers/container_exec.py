"""``Exec``: a URL on the streaming server where the client runs ``cmd`` in a RUNNING
container, interactively (kubelet/crictl connect with SPDY/3.1 or WebSocket remote
command; see :mod:`pycontainerd.cri.streaming`).

Checks before a URL is issued: the container exists (NOT_FOUND) and is RUNNING and its
sandbox READY (FAILED_PRECONDITION); a command is given and at least one of stdin, stdout,
stderr is asked for, and a tty does not come with stderr (INVALID_ARGUMENT: a terminal
merges the two). The token in the URL is single use and lives one minute.
"""

from __future__ import annotations

from ...api.cri.runtime.v1 import api_pb2 as cri
from ...errdefs import FailedPrecondition, InvalidArgument, quote
from ..service import CRIService
from ..state import ContainerOp, SandboxState, check_container_op
from ..streaming.tokens import ExecRequest


def check_streams(stdin: bool, stdout: bool, stderr: bool, tty: bool) -> None:
    """Raise :class:`InvalidArgument` for a request the streaming protocols cannot serve."""
    if not (stdin or stdout or stderr):
        raise InvalidArgument("one of stdin, stdout, or stderr must be set")
    if tty and stderr:
        raise InvalidArgument("tty and stderr cannot both be true: a terminal merges stderr into stdout")


async def exec_rpc(svc: CRIService, req: cri.ExecRequest) -> cri.ExecResponse:
    ct = svc.containers.get(req.container_id)
    check_container_op(ContainerOp.EXEC, ct.id, ct.state)
    sb = svc.sandboxes.get(ct.sandbox_id)
    if sb.state is not SandboxState.READY:
        raise FailedPrecondition(f"sandbox {quote(sb.id)} of container {quote(ct.id)} is not ready ({sb.state.value})")
    if not req.cmd:
        raise InvalidArgument("exec needs a command")
    check_streams(req.stdin, req.stdout, req.stderr, req.tty)
    url = await svc.streaming.url("exec", ExecRequest(ct.id, tuple(req.cmd), req.tty, req.stdin, req.stdout,
                                                    req.stderr))
    return cri.ExecResponse(url=url)


__all__ = ["check_streams", "exec_rpc"]
