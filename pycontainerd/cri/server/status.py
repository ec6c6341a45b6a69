"""``Status``: RuntimeReady always; NetworkReady when a CNI network is configured (else
``NetworkPluginNotReady`` with the reason). Verbose: the config, the CNI networks, the last
CNI load status and whether oom_score_adj is clamped. Features: recursive read-only mounts per
runtime handler (its OCI runtime's ``features``), SupplementalGroupsPolicy."""

from __future__ import annotations

import json

from ...api.cri.runtime.v1 import api_pb2 as cri
from ..features import supports_rro

RUNTIME_READY = "RuntimeReady"
NETWORK_READY = "NetworkReady"
NETWORK_NOT_READY_REASON = "NetworkPluginNotReady"


async def status(c, req: cri.StatusRequest) -> cri.StatusResponse:
    runtime = cri.RuntimeCondition(type=RUNTIME_READY, status=True)
    ready, message = c.cni.status()
    network = cri.RuntimeCondition(type=NETWORK_READY, status=ready)
    if not ready:
        network.reason = NETWORK_NOT_READY_REASON
        network.message = f"Network plugin returns error: {message}"
    resp = cri.StatusResponse(status=cri.RuntimeStatus(conditions=[runtime, network]))
    for name in ["", *sorted(c.config.containerd.runtimes)]:
        features = cri.RuntimeHandlerFeatures(recursive_read_only_mounts=await supports_rro(c.config, name),
                                              user_namespaces=False)
        resp.runtime_handlers.append(cri.RuntimeHandler(name=name, features=features))
    resp.features.CopyFrom(cri.RuntimeFeatures(supplemental_groups_policy=True, user_namespaces_host_network=False))
    if req.verbose:
        resp.info["config"] = json.dumps(c.config.to_dict())
        resp.info["cniconfig"] = json.dumps({
            "PluginDirs": c.cni.bin_dirs, "PluginConfDir": c.cni.conf_dir, "PluginMaxConfNum": c.cni.max_conf_num,
            "Networks": [{"Config": n.as_dict(), "IFName": n.ifname, "Source": n.source} for n in c.cni.networks],
        })
        resp.info["lastCNILoadStatus"] = "OK" if ready else message
        resp.info["oomScoreAdjRestricted"] = json.dumps(c.restrict_oom)
        resp.info["podCIDR"] = json.dumps(c.pod_cidr)
    return resp
