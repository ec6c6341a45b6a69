"""``RemovePodSandbox``: stop the sandbox if it is not yet stopped, remove every container
in it, then its task, container record, snapshot and files. Idempotent: an unknown id is
success."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil

from ...api.cri.runtime.v1 import api_pb2 as cri
from ...errdefs import ContainerdError
from ...mount import unmount_all
from ..service import CRIService
from ..state import SandboxState
from .container_remove import remove_container_locked
from .sandbox_stop import stop_sandbox


async def remove_pod_sandbox(svc: CRIService, req: cri.RemovePodSandboxRequest) -> cri.RemovePodSandboxResponse:
    sb = svc.sandboxes.find(req.pod_sandbox_id)
    if sb is None:
        return cri.RemovePodSandboxResponse()
    async with sb.lock:
        if svc.sandboxes.find(sb.id) is not sb:  # removed while we waited for the lock
            return cri.RemovePodSandboxResponse()
        await stop_sandbox(svc, sb)
        for ct in svc.containers.list(lambda x: x.sandbox_id == sb.id):
            async with ct.lock:
                await remove_container_locked(svc, ct)
        with contextlib.suppress(ContainerdError):
            await svc.daemon.delete_task(sb.id)
        await svc.daemon.delete_container(sb.id)
        await svc.daemon.remove_snapshot(sb.id)
        with contextlib.suppress(OSError):
            await asyncio.to_thread(unmount_all, os.path.join(svc.sandbox_state(sb.id), "shm"))
        shutil.rmtree(svc.sandbox_state(sb.id), ignore_errors=True)
        shutil.rmtree(svc.sandbox_root(sb.id), ignore_errors=True)
        sb.set_state(SandboxState.REMOVED)
        svc.sandboxes.delete(sb.id)
        svc.sandboxes.names.release(sb.name, sb.id)
        svc.exits.forget(sb.id)
        svc.cpu_samples.pop(f"pod:{sb.id}", None)
    svc.publish(cri.CONTAINER_DELETED_EVENT, sb)
    return cri.RemovePodSandboxResponse()
