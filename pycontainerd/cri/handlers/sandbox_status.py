"""``PodSandboxStatus``: state, times, IPs (while the network is up), namespace options,
labels, annotations; verbose info as JSON under ``info`` (pid, netns, config, spec, CNI
result, image, runtime)."""

from __future__ import annotations

import json

from ...api.cri.runtime.v1 import api_pb2 as cri
from ...errdefs import ContainerdError
from ..convert import sandbox_status_pb
from ..service import CRIService
from ..store import Sandbox, pb_to_dict
from ..util import now_ns


def sandbox_info(svc: CRIService, sb: Sandbox) -> dict:
    try:
        _, runtime = svc.config.runtime(sb.runtime_name)
        runtime_type, runtime_options = runtime.runtime_type, runtime.options
    except ContainerdError:
        runtime_type, runtime_options = "", {}
    return {
        "pid": sb.pid, "processStatus": sb.state.value, "netNamespaceClosed": not sb.network_ready,
        "netNamespacePath": sb.netns_path, "image": sb.image, "imageID": sb.image_id, "snapshotKey": sb.id,
        "snapshotter": svc.daemon.snapshotter, "runtimeHandler": sb.runtime_handler, "runtimeName": sb.runtime_name,
        "runtimeType": runtime_type, "runtimeOptions": runtime_options, "config": pb_to_dict(sb.config),
        "runtimeSpec": sb.spec, "cniResult": sb.cni_result,
    }


async def pod_sandbox_status(svc: CRIService, req: cri.PodSandboxStatusRequest) -> cri.PodSandboxStatusResponse:
    sb = svc.sandboxes.get(req.pod_sandbox_id)
    resp = cri.PodSandboxStatusResponse(status=sandbox_status_pb(sb), timestamp=now_ns())
    if req.verbose:
        resp.info["info"] = json.dumps(sandbox_info(svc, sb))
    return resp
