"""A pod with its own user namespace across a daemon restart, against a real daemon, runc and
Debian's CNI plugins (bridge + host-local, in a network namespace the test creates): the
network namespace the runtime made for the pod, pinned after the pause was created, is found
again from the sandbox record (its path, address, CNI result), a new container still joins the
pod's user namespace and reaches the pod's address, and removing the pod afterwards tears down
the network and the pin (the environment's teardown fails the test for a left-over pin,
mount or process)."""

from __future__ import annotations

import json
import os

import pytest

from pycontainerd.api.cri.runtime.v1 import api_pb2 as cri
from tests.integration.test_cri_pods import private_subnet
from tests.support.cri import container_config, cri_env, pod_config, reachable_base

pytestmark = [pytest.mark.integration, pytest.mark.root]

ROOT = cri.IDMapping(container_id=0, host_id=300000, length=65536)


def with_userns(cfg):
    """``cfg`` (a pod or container config) with the pod's user namespace options."""
    opts = cfg.linux.security_context.namespace_options
    opts.userns_options.CopyFrom(cri.UserNamespace(mode=cri.POD, uids=[ROOT], gids=[ROOT]))
    return cfg


def test_pod_user_namespace_across_a_restart(registry, ctr_bin):
    with reachable_base("cri-userns-") as base, \
            cri_env(base / "cri", registry, netns=True, subnet=private_subnet(), ctr=ctr_bin) as env:
        c = env.client
        cfg = with_userns(pod_config("userns", log_dir=str(env.log_dir / "userns")))
        pod = c.run_pod(cfg)
        before = c.pod_status(pod, verbose=True)
        ip = before.status.network.ip
        info = json.loads(before.info["info"])
        pin = info["netNamespacePath"]
        assert ip and os.path.exists(pin)
        # the pinned namespace is the pause process's, the one runc made in the pod's user namespace
        assert os.stat(pin).st_ino == os.stat(f"/proc/{info['pid']}/ns/net").st_ino

        def start(name: str) -> tuple[str, int]:
            ctr = with_userns(container_config(name, env.images.busybox, command=["sleep", "1000"]))
            cid = env.client.create(pod, ctr, cfg)
            env.client.start(cid)
            return cid, int(json.loads(env.client.status(cid, verbose=True).info["info"])["pid"])

        _, first = start("before")
        env.restart()
        c = env.client
        after = c.pod_status(pod, verbose=True)
        assert after.status.state == cri.SANDBOX_READY and after.status.network.ip == ip
        assert after.info["info"] == before.info["info"]
        cid, second = start("after")
        pause = int(json.loads(after.info["info"])["pid"])
        user = {os.readlink(f"/proc/{p}/ns/user") for p in (pause, first, second)}
        assert len(user) == 1 and user != {os.readlink("/proc/self/ns/user")}
        resp = c.ExecSync(cri.ExecSyncRequest(container_id=cid, cmd=["ip", "-o", "-4", "addr", "show", "eth0"],
                                              timeout=30))
        assert resp.exit_code == 0 and f"inet {ip}/" in resp.stdout.decode(), resp
        c.StopPodSandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pod))
        c.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod))
        assert not os.path.exists(pin)
