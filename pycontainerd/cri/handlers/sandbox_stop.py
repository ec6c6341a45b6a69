"""``StopPodSandbox``: stop every container of the pod (at once), kill the pause process,
unmount the pod's ``/dev/shm``, CNI DEL and remove the network namespace. The sandbox stays
(NOTREADY) until removed. Idempotent: an unknown id, or a stopped sandbox, is success."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

from ...api.cri.runtime.v1 import api_pb2 as cri
from ...errdefs import ContainerdError, NotFound
from ...mount import unmount_all
from .. import netns
from ..service import CRIService
from ..state import SandboxOp, SandboxState, allowed
from ..store import Sandbox
from .container_stop import stop_container

KILL_WAIT = 10.0


async def kill_sandbox(svc: CRIService, sb: Sandbox) -> None:
    """SIGKILL the pause process and wait until its exit is handled."""
    try:
        await svc.daemon.kill(sb.id, signal.SIGKILL, all=True)
    except NotFound:
        await svc.exits.handle_sandbox_exit(sb, 137, 0)
        return
    except ContainerdError:
        pass  # already finished: its exit is on the way
    try:
        await asyncio.wait_for(sb.exited.wait(), KILL_WAIT)
        return
    except TimeoutError:
        pass
    try:
        st = await svc.daemon.task_state(sb.id)
    except NotFound:
        await svc.exits.handle_sandbox_exit(sb, 137, 0)
        return
    if st.status == "stopped":
        await svc.exits.handle_sandbox_exit(sb, st.exit_status, st.exited_at_ns)
    else:
        await asyncio.wait_for(sb.exited.wait(), KILL_WAIT)


async def stop_sandbox(svc: CRIService, sb: Sandbox) -> None:
    """Stop ``sb`` (its lock held). Every step is idempotent."""
    for ct in svc.containers.list(lambda x: x.sandbox_id == sb.id):
        async with ct.lock:
            await stop_container(svc, ct, 0)
    if allowed(SandboxOp.STOP, sb.state) and sb.state is not SandboxState.INIT:
        await kill_sandbox(svc, sb)
    elif sb.state is SandboxState.INIT:
        sb.set_state(SandboxState.NOTREADY)
    shm = os.path.join(svc.sandbox_state(sb.id), "shm")
    with contextlib.suppress(OSError):
        await asyncio.to_thread(unmount_all, shm)
    if sb.netns_path:
        if sb.network_ready or svc.cni.cached(sb.id):
            await svc.cni.teardown(sb.id, sb.netns_path)
            sb.network_ready = False
            svc.save(sb)
        await asyncio.to_thread(netns.remove, sb.netns_path)
    svc.save(sb)


async def stop_pod_sandbox(svc: CRIService, req: cri.StopPodSandboxRequest) -> cri.StopPodSandboxResponse:
    sb = svc.sandboxes.find(req.pod_sandbox_id)
    if sb is not None:
        async with sb.lock:
            await stop_sandbox(svc, sb)
    return cri.StopPodSandboxResponse()
