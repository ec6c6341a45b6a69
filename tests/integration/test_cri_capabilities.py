"""CRI ``add_capabilities: [ALL]`` is the daemon's own capability set (issue 13).

containerd expands ``ALL`` to the capabilities it holds itself (``cap.Current``: its
effective set). These machines grant no ``CAP_SYS_RESOURCE``: a container asking for every
capability the kernel knows cannot be made (runc: ``unable to apply caps: operation not
permitted``). Here a container with ``ALL`` starts, and its effective, permitted and
bounding sets are the daemon's effective set exactly; ``ALL`` with a drop takes that one out.
"""

from __future__ import annotations

import pytest

from pycontainerd.api.cri.runtime.v1 import api_pb2 as cri
from tests.support.cri import container_config, cri_env, pod_config

pytestmark = [pytest.mark.integration, pytest.mark.root]


def capsets(status: str) -> dict[str, int]:
    return {k: int(v, 16) for k, v in (line.split(":\t") for line in status.splitlines() if line.startswith("Cap"))}


def test_add_all_is_the_daemons_own_set(tmp_path, registry):
    with cri_env(tmp_path / "cri", registry) as env:
        c = env.client
        c.pull(env.images.busybox)
        with open(f"/proc/{env.daemon.proc.pid}/status") as f:
            daemon_eff = capsets(f.read())["CapEff"]
        cfg = pod_config("caps-all", host_network=True)
        pid = c.run_pod(cfg)
        cc = container_config("all", env.images.busybox, command=["sleep", "1000"])
        cc.linux.security_context.capabilities.add_capabilities.append("ALL")
        cid = c.create(pid, cc, cfg)
        c.start(cid)
        got = capsets(c.exec(cid, "cat", "/proc/self/status").stdout.decode())
        assert got["CapEff"] == got["CapPrm"] == got["CapBnd"] == daemon_eff, {k: hex(v) for k, v in got.items()}
        cd = container_config("all-but-chown", env.images.busybox, command=["sleep", "1000"])
        cd.linux.security_context.capabilities.add_capabilities.append("ALL")
        cd.linux.security_context.capabilities.drop_capabilities.append("CHOWN")
        did = c.create(pid, cd, cfg)
        c.start(did)
        got = capsets(c.exec(did, "cat", "/proc/self/status").stdout.decode())
        assert got["CapEff"] == daemon_eff & ~1  # CAP_CHOWN is bit 0
        c.StopPodSandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pid))
