"""``Status``: RuntimeReady always; NetworkReady when a CNI network is configured (else
``NetworkPluginNotReady`` with the reason). Verbose: the config, the CNI networks, the last
CNI load status and whether oom_score_adj is clamped. Features: recursive read-only mounts per
runtime handler (its OCI runtime's ``features``), user namespaces per handler (runc and an id-mappable
snapshotter filesystem), SupplementalGroupsPolicy."""

from __future__ import annotations

import json

from ...api.cri.runtime.v1 import api_pb2 as cri
from ..features import supports_rro, supports_user_namespaces
from ..service import CRIService

RUNTIME_READY = "RuntimeReady"
NETWORK_READY = "NetworkReady"
NETWORK_NOT_READY_REASON = "NetworkPluginNotReady"


async def status(svc: CRIService, req: cri.StatusRequest) -> cri.StatusResponse:
    runtime = cri.RuntimeCondition(type=RUNTIME_READY, status=True)
    ready, message = svc.cni.status()
    network = cri.RuntimeCondition(type=NETWORK_READY, status=ready)
    if not ready:
        network.reason = NETWORK_NOT_READY_REASON
        network.message = f"Network plugin returns error: {message}"
    resp = cri.StatusResponse(status=cri.RuntimeStatus(conditions=[runtime, network]))
    for name in ["", *sorted(svc.config.containerd.runtimes)]:
        features = cri.RuntimeHandlerFeatures(recursive_read_only_mounts=await supports_rro(svc.config, name),
                                              user_namespaces=await supports_user_namespaces(
                                                  svc.config, name, svc.daemon.snapshotter, svc.snapshotter_root))
        resp.runtime_handlers.append(cri.RuntimeHandler(name=name, features=features))
    resp.features.CopyFrom(cri.RuntimeFeatures(supplemental_groups_policy=True, user_namespaces_host_network=False))
    if req.verbose:
        resp.info["config"] = json.dumps(svc.config.to_dict())
        resp.info["cniconfig"] = json.dumps({
            "PluginDirs": svc.cni.bin_dirs, "PluginConfDir": svc.cni.conf_dir, "PluginMaxConfNum": svc.cni.max_conf_num,
            "Networks": [{"Config": n.as_dict(), "IFName": n.ifname, "Source": n.source} for n in svc.cni.networks],
        })
        resp.info["lastCNILoadStatus"] = "OK" if ready else message
        resp.info["oomScoreAdjRestricted"] = json.dumps(svc.restrict_oom)
        resp.info["podCIDR"] = json.dumps(svc.pod_cidr)
    return resp
