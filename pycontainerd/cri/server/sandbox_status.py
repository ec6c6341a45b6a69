"""``PodSandboxStatus``: state, times, IPs (while the network is up), namespace options,
labels, annotations; verbose info as JSON under ``info`` (pid, netns, config, spec, CNI
result, image, runtime)."""

from __future__ import annotations

import json

from ...api.cri.runtime.v1 import api_pb2 as cri
from ...errdefs import ContainerdError
from ..store import Sandbox, pb_to_dict
from ..util import now_ns


def sandbox_status_pb(sb: Sandbox) -> cri.PodSandboxStatus:
    st = cri.PodSandboxStatus(id=sb.id, metadata=sb.config.metadata, state=sb.state.to_cri(),
                              created_at=sb.created_at, runtime_handler=sb.runtime_handler)
    st.labels.update(sb.config.labels)
    st.annotations.update(sb.config.annotations)
    if not sb.host_network and sb.network_ready:
        st.network.ip = sb.ip
        for ip in sb.additional_ips:
            st.network.additional_ips.add(ip=ip)
    st.linux.namespaces.options.CopyFrom(sb.namespace_options)
    return st


def sandbox_info(c, sb: Sandbox) -> dict:
    try:
        _, runtime = c.config.runtime(sb.runtime_name)
        runtime_type, runtime_options = runtime.runtime_type, runtime.options
    except ContainerdError:
        runtime_type, runtime_options = "", {}
    return {
        "pid": sb.pid, "processStatus": sb.state.value, "netNamespaceClosed": not sb.network_ready,
        "netNamespacePath": sb.netns_path, "image": sb.image, "imageID": sb.image_id, "snapshotKey": sb.id,
        "snapshotter": c.backend.snapshotter, "runtimeHandler": sb.runtime_handler, "runtimeName": sb.runtime_name,
        "runtimeType": runtime_type, "runtimeOptions": runtime_options, "config": pb_to_dict(sb.config),
        "runtimeSpec": sb.spec, "cniResult": sb.cni_result,
    }


async def pod_sandbox_status(c, req: cri.PodSandboxStatusRequest) -> cri.PodSandboxStatusResponse:
    await c.ensure_started()
    sb = c.sandboxes.get(req.pod_sandbox_id)
    resp = cri.PodSandboxStatusResponse(status=sandbox_status_pb(sb), timestamp=now_ns())
    if req.verbose:
        resp.info["info"] = json.dumps(sandbox_info(c, sb))
    return resp
