"""``RemoveContainer``: a running container is killed first; then its task, record,
snapshot, image volumes, fifos and status go. The log file stays (it is the kubelet's). Idempotent: an
unknown id is success."""

from __future__ import annotations

import contextlib
import shutil

from ...api.cri.runtime.v1 import api_pb2 as cri
from ...errdefs import ContainerdError
from .. import image_volume
from ..service import CRIService
from ..state import ContainerState
from ..store import Container
from .container_stop import stop_container


async def remove_container_locked(svc: CRIService, ct: Container) -> None:
    """Remove ``ct`` (its lock held)."""
    if svc.containers.find(ct.id) is not ct:
        return
    await stop_container(svc, ct, 0)
    if ct.io is not None:
        await ct.io.close()
        ct.io = None
    with contextlib.suppress(ContainerdError):
        await svc.daemon.delete_task(ct.id)
    await svc.daemon.delete_container_and_snapshot(ct.id, ct.id)
    await image_volume.release(svc, ct.id, ct.config.mounts)
    shutil.rmtree(svc.container_state(ct.id), ignore_errors=True)
    shutil.rmtree(svc.container_root(ct.id), ignore_errors=True)
    ct.set_state(ContainerState.REMOVED)
    svc.containers.delete(ct.id)
    svc.containers.names.release(ct.name, ct.id)
    svc.exits.forget(ct.id)
    svc.cpu_samples.pop(ct.id, None)
    svc.publish(cri.CONTAINER_DELETED_EVENT, ct)


async def remove_container(svc: CRIService, req: cri.RemoveContainerRequest) -> cri.RemoveContainerResponse:
    ct = svc.containers.find(req.container_id)
    if ct is not None:
        async with ct.lock:
            await remove_container_locked(svc, ct)
    return cri.RemoveContainerResponse()
