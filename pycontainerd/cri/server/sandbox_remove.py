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
from ..state import SandboxState
from .container_remove import remove_container_locked
from .sandbox_stop import stop_sandbox


async def remove_pod_sandbox(c, req: cri.RemovePodSandboxRequest) -> cri.RemovePodSandboxResponse:
    await c.ensure_started()
    sb = c.sandboxes.find(req.pod_sandbox_id)
    if sb is None:
        return cri.RemovePodSandboxResponse()
    async with sb.lock:
        if c.sandboxes.find(sb.id) is not sb:  # removed while we waited for the lock
            return cri.RemovePodSandboxResponse()
        await stop_sandbox(c, sb)
        for ct in c.containers.list(lambda x: x.sandbox_id == sb.id):
            async with ct.lock:
                await remove_container_locked(c, ct)
        with contextlib.suppress(ContainerdError):
            await c.backend.delete_task(sb.id)
        await c.backend.delete_container(sb.id)
        await c.backend.remove_snapshot(sb.id)
        with contextlib.suppress(OSError):
            await asyncio.to_thread(unmount_all, os.path.join(c.sandbox_state(sb.id), "shm"))
        shutil.rmtree(c.sandbox_state(sb.id), ignore_errors=True)
        shutil.rmtree(c.sandbox_root(sb.id), ignore_errors=True)
        sb.set_state(SandboxState.REMOVED)
        c.sandboxes.delete(sb.id)
        c.sandboxes.names.release(sb.name, sb.id)
        c.cpu_samples.pop(f"pod:{sb.id}", None)
    c.publish(cri.CONTAINER_DELETED_EVENT, sb)
    return cri.RemovePodSandboxResponse()
