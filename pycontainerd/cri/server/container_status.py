"""``ContainerStatus``: state, times, exit code and reason, image (first repo tag / repo
digest, and the image id), mounts, log path, resources, user, stop signal; verbose info as
JSON under ``info`` (sandbox id, pid, snapshot, runtime, config, spec)."""

from __future__ import annotations

import json

from ...api.cri.runtime.v1 import api_pb2 as cri
from ..store import Container, pb_to_dict
from ..state import ContainerState
from ..util import cri_signal_value, process_identity


def container_status_pb(c, ct: Container) -> cri.ContainerStatus:
    st = cri.ContainerStatus(
        id=ct.id, metadata=ct.config.metadata, state=ct.state.to_cri(), created_at=ct.created_at,
        started_at=ct.started_at, finished_at=ct.finished_at, exit_code=ct.exit_code,
        image=cri.ImageSpec(image=ct.image_repo_tag or ct.image_ref, annotations=ct.config.image.annotations),
        image_ref=ct.image_repo_digest or ct.image_id, image_id=ct.image_id, reason=ct.reason, message=ct.message,
        log_path=ct.log_path, stop_signal=cri_signal_value(ct.stop_signal))
    st.labels.update(ct.config.labels)
    st.annotations.update(ct.config.annotations)
    st.mounts.extend(ct.config.mounts)
    st.resources.linux.CopyFrom(ct.resources)
    if ct.pid and ct.state == ContainerState.RUNNING:
        # the identity the init process runs with now; the last one read stays after it exits
        ct.user = process_identity(ct.pid) or ct.user
    if ct.user:
        st.user.linux.uid = int(ct.user.get("uid", 0))
        st.user.linux.gid = int(ct.user.get("gid", 0))
        st.user.linux.supplemental_groups.extend(int(g) for g in ct.user.get("additional_gids") or [])
    return st


def container_info(c, ct: Container) -> dict:
    return {
        "sandboxID": ct.sandbox_id, "pid": ct.pid, "removing": False, "snapshotKey": ct.id,
        "snapshotter": c.backend.snapshotter, "runtimeName": ct.runtime_name, "config": pb_to_dict(ct.config),
        "runtimeSpec": ct.spec, "logPath": ct.log_path, "stdout": ct.stdout_path, "stderr": ct.stderr_path,
    }


async def container_status(c, req: cri.ContainerStatusRequest) -> cri.ContainerStatusResponse:
    await c.ensure_started()
    ct = c.containers.get(req.container_id)
    resp = cri.ContainerStatusResponse(status=container_status_pb(c, ct))
    if req.verbose:
        resp.info["info"] = json.dumps(container_info(c, ct))
    return resp
