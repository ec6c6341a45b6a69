"""Pod user namespaces (``userns_options`` mode POD) through Kubernetes' crictl (issue 13).

A pod whose uids and gids 0..65535 map to the host's 200000..265535, on the CNI network of a
node configured as a new user would (:func:`tests.support.critest.cri_node`):

- a container reads ``/proc/self/uid_map`` (the pod's mapping), sees the image's files owned
  by its root (the layers are id-mapped, not ``nobody``), and writes a file to its rootfs;
- the pause process and a running container share one user namespace (not the host's) and
  one network namespace, which the pod's user namespace owns (the container's root may
  configure it) and which has the pod's CNI address;
- the file a container writes lands on the host as uid/gid 200000;
- removing the pod leaves no id-mapped mount, rootfs, netns pin or process (the node's
  teardown fails the test for any of those);
- refused with containerd's code (UNKNOWN) and message, leaving nothing: two mapping lines,
  a mapping without container id 0, mode CONTAINER, a container whose user namespace options
  differ from its pod's; a pod runc fails to create (the host's IPC namespace) leaves no
  mount, id-mapped clone or pin.
"""

from __future__ import annotations

import json
import os
import re
import uuid

import pytest

from pycontainerd.testing import mounts_under, netns_pins, pins_of
from tests.support.cri import reachable_base
from tests.support.crictl import crictl, crictl_json, wait_for
from tests.support.critest import cri_node

pytestmark = [pytest.mark.root, pytest.mark.interop]

BUSYBOX = "registry.k8s.io/e2e-test-images/busybox:1.29-2"
HOST_ID, SIZE = 200000, 65536
MAPPING = {"container_id": 0, "host_id": HOST_ID, "length": SIZE}
POD, CONTAINER = 0, 1   # runtime.v1 NamespaceMode


@pytest.fixture(scope="module")
def node():
    with reachable_base("crictl-userns-") as base, cri_node(base / "node", "ours") as n:
        crictl(n, "pull", BUSYBOX)
        yield n


def userns(mode: int = POD, uids=(MAPPING,), gids=(MAPPING,)) -> dict:
    return {"namespace_options": {"userns_options": {"mode": mode, "uids": list(uids), "gids": list(gids)}}}


def write(tmp_path, name: str, obj: dict) -> str:
    path = tmp_path / f"{name}-{uuid.uuid4().hex[:6]}.json"
    path.write_text(json.dumps(obj))
    return str(path)


def pod_config(tmp_path, security: dict) -> dict:
    name = f"userns-{uuid.uuid4().hex[:6]}"
    logs = tmp_path / f"logs-{name}"
    logs.mkdir()
    return {"metadata": {"name": name, "namespace": "userns-test", "uid": uuid.uuid4().hex, "attempt": 0},
            "hostname": name, "log_directory": str(logs), "linux": {"security_context": security}}


def ctr_config(name: str, security: dict, *command: str) -> dict:
    return {"metadata": {"name": name}, "image": {"image": BUSYBOX}, "command": list(command),
            "log_path": f"{name}.log", "linux": {"security_context": security}}


def failed_unknown(proc) -> str:
    assert proc.returncode != 0, proc.stdout
    assert "code = Unknown desc = " in proc.stderr, proc.stderr
    return proc.stderr


def ns_of(pid: int, kind: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{kind}")


def test_pod_with_its_own_user_namespace(node, tmp_path):
    pod_cfg = pod_config(tmp_path, userns())
    pod_path = write(tmp_path, "pod", pod_cfg)
    pod = crictl(node, "runp", pod_path).stdout.strip()
    try:
        # a container that reads its mapping, looks at the image's owners and writes to its rootfs
        script = "cat /proc/self/uid_map; echo written > /written && ls -ln /written /bin/busybox"
        cid = crictl(node, "create", pod, write(tmp_path, "reader", ctr_config("reader", userns(), "sh", "-c", script)),
                     pod_path).stdout.strip()
        crictl(node, "start", cid)
        wait_for(lambda: crictl_json(node, "inspect", cid)["status"]["state"] == "CONTAINER_EXITED",
                 timeout=60, what="the reader to exit")
        status = crictl_json(node, "inspect", cid)["status"]
        out = crictl(node, "logs", cid).stdout
        assert status["exitCode"] == 0, out
        assert re.match(rf"\s*0\s+{HOST_ID}\s+{SIZE}\n", out), out
        owners = {line.split()[-1]: line.split()[2:4] for line in out.splitlines()[1:]}
        assert owners == {"/written": ["0", "0"], "/bin/busybox": ["0", "0"]}, out

        # a running container shares the pause process's user and network namespaces
        net_admin = {**userns(), "capabilities": {"add_capabilities": ["NET_ADMIN"]}}
        sleeper = crictl(node, "create", pod, write(tmp_path, "sleeper", ctr_config("sleeper", net_admin, "sleep", "3600")),
                         pod_path).stdout.strip()
        crictl(node, "start", sleeper)
        pause_pid = json.loads(crictl(node, "inspectp", "-o", "json", pod).stdout)["info"]["pid"]
        pid = crictl_json(node, "inspect", sleeper)["info"]["pid"]
        assert ns_of(pid, "user") == ns_of(pause_pid, "user") != ns_of(os.getpid(), "user")
        assert ns_of(pid, "net") == ns_of(pause_pid, "net")
        with open(f"/proc/{pid}/uid_map") as f:
            assert f.read().split() == ["0", str(HOST_ID), str(SIZE)]
        ip = crictl_json(node, "inspectp", pod)["status"]["network"]["ip"]
        assert ip, "the pod has no CNI address"
        shown = crictl(node, "exec", "-s", sleeper, "ip", "-o", "-4", "addr", "show", "eth0").stdout
        assert f"inet {ip}/" in shown, shown
        # the netns belongs to the pod's user namespace: CAP_NET_ADMIN there is enough to change it
        crictl(node, "exec", "-s", sleeper, "ip", "link", "set", "lo", "mtu", "65535")
        assert "mtu 65535" in crictl(node, "exec", "-s", sleeper, "ip", "link", "show", "lo").stdout

        # what the container's root writes is the mapped uid on the host
        crictl(node, "exec", "-s", sleeper, "sh", "-c", "echo hi > /from-root")
        st = os.stat(f"/proc/{pid}/root/from-root")
        assert (st.st_uid, st.st_gid) == (HOST_ID, HOST_ID)
        assert not [m for m in mounts_under(str(node.base)) if ".idmap-" in m]
    finally:
        crictl(node, "stopp", pod, check=False)
        crictl(node, "rmp", "-f", pod, check=False)
    assert pod not in crictl(node, "pods", "-q").stdout
    assert not [m for m in mounts_under(str(node.base)) if pod in m or ".idmap-" in m]


@pytest.mark.parametrize(("security", "message"), [
    (userns(uids=(MAPPING, {**MAPPING, "host_id": 2000}), gids=(MAPPING, {**MAPPING, "host_id": 2000})),
     "only one mapping line supported, got 2 mapping lines"),
    (userns(uids=({**MAPPING, "container_id": 1},), gids=({**MAPPING, "container_id": 1},)),
     "container ID 0 is not mapped"),
    (userns(mode=CONTAINER, uids=(), gids=()), "unsupported user namespace mode: 'CONTAINER'"),
    (userns(uids=()), "without UID and GID mappings"),
], ids=["two-lines", "no-root", "mode-container", "no-uids"])
def test_bad_pod_user_namespace_refused(node, tmp_path, security, message):
    proc = crictl(node, "runp", write(tmp_path, "pod", pod_config(tmp_path, security)), check=False)
    assert message in failed_unknown(proc)
    assert crictl(node, "pods", "-q").stdout.split() == []
    assert not {p for p in pins_of(node.base, netns_pins()) if p.startswith("cni-")}  # no pod netns made


def test_container_user_namespace_must_match_pod(node, tmp_path):
    pod_path = write(tmp_path, "pod", pod_config(tmp_path, userns()))
    pod = crictl(node, "runp", pod_path).stdout.strip()
    try:
        other = userns(uids=({**MAPPING, "host_id": 300000},), gids=({**MAPPING, "host_id": 300000},))
        proc = crictl(node, "create", pod, write(tmp_path, "c", ctr_config("c", other, "true")), pod_path, check=False)
        assert "user namespace config for sandbox is different from container" in failed_unknown(proc)
        assert crictl(node, "ps", "-a", "-q", "--pod", pod).stdout.split() == []
    finally:
        crictl(node, "stopp", pod, check=False)
        crictl(node, "rmp", "-f", pod, check=False)


def test_pod_whose_runtime_create_fails_leaves_nothing(node, tmp_path):
    """The host's IPC namespace with a pod user namespace: runc cannot mount the host's
    mqueue from inside the pod's user namespace, so the pause's create fails after the
    snapshot was id-mapped and mounted; nothing of the pod is left (mounts, its ``.idmap-``
    clones, a pinned netns, a listed pod)."""
    security = userns()
    security["namespace_options"]["ipc"] = 2   # NODE
    proc = crictl(node, "runp", write(tmp_path, "pod", pod_config(tmp_path, security)), check=False)
    assert "code = Unknown desc = " in proc.stderr and "mqueue" in proc.stderr, proc.stderr
    assert crictl(node, "pods", "-q").stdout.split() == []
    assert not [m for m in mounts_under(str(node.base)) if "/k8s.io/" in m or ".idmap-" in m]
    assert not {p for p in pins_of(node.base, netns_pins()) if p.startswith("cni-")}
