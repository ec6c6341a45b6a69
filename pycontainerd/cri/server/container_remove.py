"""``RemoveContainer``: a running container is killed first; then its task, record,
snapshot, image volumes, fifos and status go. The log file stays (it is the kubelet's). Idempotent: an
unknown id is success."""

from __future__ import annotations

import contextlib
import shutil

from ...api.cri.runtime.v1 import api_pb2 as cri
from ...errdefs import ContainerdError
from .. import image_volume
from ..state import ContainerState
from ..store import Container
from .container_stop import stop_container


async def remove_container_locked(c, ct: Container) -> None:
    """Remove ``ct`` (its lock held)."""
    if c.containers.find(ct.id) is not ct:
        return
    await stop_container(c, ct, 0)
    if ct.io is not None:
        await ct.io.close()
        ct.io = None
    with contextlib.suppress(ContainerdError):
        await c.backend.delete_task(ct.id)
    await c.backend.delete_container(ct.id)
    await c.backend.remove_snapshot(ct.id)
    await image_volume.release(c, ct.id, ct.config.mounts)
    shutil.rmtree(c.container_state(ct.id), ignore_errors=True)
    shutil.rmtree(c.container_root(ct.id), ignore_errors=True)
    ct.set_state(ContainerState.REMOVED)
    c.containers.delete(ct.id)
    c.containers.names.release(ct.name, ct.id)
    c.cpu_samples.pop(ct.id, None)
    c.publish(cri.CONTAINER_DELETED_EVENT, ct)


async def remove_container(c, req: cri.RemoveContainerRequest) -> cri.RemoveContainerResponse:
    await c.ensure_started()
    ct = c.containers.find(req.container_id)
    if ct is not None:
        async with ct.lock:
            await remove_container_locked(c, ct)
    return cri.RemoveContainerResponse()
