"""``StopContainer``: the stop signal (the config's, else the image's ``StopSignal``, else
SIGTERM), up to ``timeout`` seconds for the process to exit, then SIGKILL; returns once
the exit is recorded. Idempotent: an unknown id or a container that is not running is
success."""

from __future__ import annotations

import asyncio
import signal

from ...api.cri.runtime.v1 import api_pb2 as cri
from ...errdefs import ContainerdError, NotFound
from ...log import get_logger
from ..service import CRIService
from ..state import ContainerOp, allowed
from ..store import Container
from ..util import parse_signal

log = get_logger("cri")
KILL_WAIT = 10.0


async def _signal(svc: CRIService, ct: Container, sig: int) -> bool:
    """Send ``sig``; False when there is no task any more (its exit was recorded here)."""
    try:
        await svc.daemon.kill(ct.id, sig)
    except NotFound:
        await svc.exits.handle_container_exit(ct, 255 if sig != signal.SIGKILL else 137, 0)
        return False
    except ContainerdError as exc:  # e.g. the process already finished: its exit is coming
        log.debug("signal not delivered", id=ct.id, signal=sig, error=str(exc))
    return True


async def _reap_if_stopped(svc: CRIService, ct: Container) -> None:
    try:
        st = await svc.daemon.task_state(ct.id)
    except NotFound:
        await svc.exits.handle_container_exit(ct, 137, 0)
        return
    if st.status == "stopped":
        await svc.exits.handle_container_exit(ct, st.exit_status, st.exited_at_ns)


async def stop_container(svc: CRIService, ct: Container, timeout: int) -> None:
    """Stop ``ct`` (its lock held); nothing to do unless it runs."""
    if not allowed(ContainerOp.STOP, ct.state):
        return
    if timeout > 0:
        sig = parse_signal(ct.stop_signal)
        if await _signal(svc, ct, sig):
            try:
                await asyncio.wait_for(ct.exited.wait(), timeout)
                return
            except TimeoutError:
                log.info("stop timeout passed, killing", id=ct.id, timeout=timeout)
    if not ct.exited.is_set() and await _signal(svc, ct, signal.SIGKILL):
        try:
            await asyncio.wait_for(ct.exited.wait(), KILL_WAIT)
        except TimeoutError:
            await _reap_if_stopped(svc, ct)
            await asyncio.wait_for(ct.exited.wait(), KILL_WAIT)


async def stop_container_rpc(svc: CRIService, req: cri.StopContainerRequest) -> cri.StopContainerResponse:
    ct = svc.containers.find(req.container_id)
    if ct is not None:
        async with ct.lock:
            await stop_container(svc, ct, int(req.timeout))
    return cri.StopContainerResponse()
