"""``ContainerStatus``: state, times, exit code and reason, image (first repo tag / repo
digest, and the image id), mounts, log path, resources, user, stop signal; verbose info as
JSON under ``info`` (sandbox id, pid, snapshot, runtime, config, spec)."""

from __future__ import annotations

import json

from ...api.cri.runtime.v1 import api_pb2 as cri
from ..convert import container_status_pb
from ..service import CRIService
from ..store import Container, pb_to_dict


def container_info(svc: CRIService, ct: Container) -> dict:
    return {
        "sandboxID": ct.sandbox_id, "pid": ct.pid, "removing": False, "snapshotKey": ct.id,
        "snapshotter": svc.daemon.snapshotter, "runtimeName": ct.runtime_name, "config": pb_to_dict(ct.config),
        "runtimeSpec": ct.spec, "logPath": ct.log_path, "stdout": ct.stdout_path, "stderr": ct.stderr_path,
    }


async def container_status(svc: CRIService, req: cri.ContainerStatusRequest) -> cri.ContainerStatusResponse:
    ct = svc.containers.get(req.container_id)
    resp = cri.ContainerStatusResponse(status=container_status_pb(ct))
    if req.verbose:
        resp.info["info"] = json.dumps(container_info(svc, ct))
    return resp
