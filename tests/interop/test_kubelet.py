"""A real kubelet (standalone, static pods, no API server) runs pods on pycontainerd (issue 13).

What kubelet does here it does through the CRI alone; what the test reads back it reads with
crictl (static pods have no API object to read). The node is :func:`tests.support.critest.cri_node`
(mirrors, CNI bridge, its own netns); images come by their public names through the mirrors.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.support.crictl import crictl, crictl_json, in_pty, wait_for
from tests.support.critest import cri_node, pod_pins_in
from tests.support.cri import mounts_under
from tests.support.kubelet import kubelet

pytestmark = [pytest.mark.root, pytest.mark.interop]

BUSYBOX = "registry.k8s.io/e2e-test-images/busybox:1.29-2"


def manifest(name: str, containers: list[dict], restart: str = "Always") -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"},
                       "spec": {"restartPolicy": restart, "terminationGracePeriodSeconds": 2,
                                "containers": containers}})


def container(name: str, script: str, **extra) -> dict:
    return {"name": name, "image": BUSYBOX, "imagePullPolicy": "IfNotPresent", "command": ["sh", "-c", script],
            **extra}


def containers_named(node, name: str) -> list[dict]:
    return crictl_json(node, "ps", "-a", "--name", f"^{name}$")["containers"]


def created(c: dict) -> float:
    return int(c["createdAt"]) / 1e9


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    with cri_node(tmp_path_factory.mktemp("kubelet") / "node", "ours") as n:
        yield n


@pytest.fixture(scope="module")
def kube(node, tmp_path_factory):
    with kubelet(node, tmp_path_factory.mktemp("kubelet") / "kubelet") as k:
        yield k


def test_static_pod_runs_and_logs_read_back(node, kube):
    (kube.manifests / "hello.json").write_text(manifest("hello", [
        container("greeter", "echo hello-from-kubelet; exec sleep 3600")]))
    pods = wait_for(lambda: [p for p in crictl_json(node, "pods", "--name", "hello-pcd-node")["items"]
                             if p["state"] == "SANDBOX_READY"], 180, "the static pod's sandbox")
    assert pods[0]["metadata"]["namespace"] == "default"
    running = wait_for(lambda: [c for c in containers_named(node, "greeter") if c["state"] == "CONTAINER_RUNNING"],
                       120, "the container running")
    assert running[0]["podSandboxId"] == pods[0]["id"]
    wait_for(lambda: crictl(node, "logs", running[0]["id"]).stdout == "hello-from-kubelet\n", 30, "its log")
    # kubelet wrote the log where it asked (its podLogsDir), the runtime filled it
    logs = list((kube.base / "pods").glob("default_hello-pcd-node_*/greeter/0.log"))
    assert logs and "hello-from-kubelet" in logs[0].read_text()


def test_liveness_probe_restarts_container(node, kube):
    (kube.manifests / "probed.json").write_text(manifest("probed", [container(
        "flaky", "touch /tmp/healthy; sleep 4; rm /tmp/healthy; exec sleep 3600",
        livenessProbe={"exec": {"command": ["cat", "/tmp/healthy"]}, "initialDelaySeconds": 1,
                       "periodSeconds": 1, "failureThreshold": 1})]))
    restarted = wait_for(lambda: [c for c in containers_named(node, "flaky") if c["metadata"]["attempt"] >= 1],
                         240, "a restart by the liveness probe")
    assert restarted[0]["metadata"]["attempt"] == 1
    first = next(c for c in containers_named(node, "flaky") if c["metadata"]["attempt"] == 0)
    assert first["state"] == "CONTAINER_EXITED"
    assert crictl_json(node, "inspect", first["id"])["status"]["exitCode"] == 137     # killed by the kubelet
    (kube.manifests / "probed.json").unlink()


def test_crash_loop_backs_off(node, kube):
    (kube.manifests / "crasher.json").write_text(manifest("crasher", [container("crash", "echo crashing; exit 3")]))
    started: dict[int, float] = {}       # attempt -> creation time (kubelet removes older attempts)

    def seen_four() -> bool:
        for c in containers_named(node, "crash"):
            started.setdefault(c["metadata"]["attempt"], created(c))
            got = crictl(node, "inspect", "-o", "json", c["id"], check=False)   # kubelet may remove it meanwhile
            if c["state"] == "CONTAINER_EXITED" and got.returncode == 0:
                st = json.loads(got.stdout)["status"]
                assert (st["exitCode"], st["reason"]) == (3, "Error"), st
        return len(started) >= 4 and max(started) >= 3

    try:
        wait_for(seen_four, 400, "four attempts", every=0.5)
    except AssertionError:
        raise AssertionError(f"{started}\n{crictl(node, 'ps', '-a').stdout}\n{kube.log()[-4000:]}") from None
    # kubelet waits longer before each restart (CrashLoopBackOff: 10 s, 20 s, 40 s, …)
    gaps = [started[a + 1] - started[a] for a in (1, 2)]
    assert gaps[1] > gaps[0], (started, gaps)
    assert "CrashLoopBackOff" in kube.log()
    (kube.manifests / "crasher.json").unlink()


def greeter(node) -> str:
    return wait_for(lambda: [c for c in containers_named(node, "greeter") if c["state"] == "CONTAINER_RUNNING"],
                    120, "the hello pod (test_static_pod_runs_and_logs_read_back)")[0]["id"]


def test_crictl_exec_reaches_kubelet_pod(node, kube):
    assert crictl(node, "exec", "-s", greeter(node), "hostname").stdout.strip() == "hello-pcd-node"


@pytest.mark.xfail(strict=True, reason="streaming server answers 404 to client-go's SPDY `POST /exec` (issue 13 item 2)")
def test_crictl_exec_tty_reaches_kubelet_pod(node, kube):
    term = in_pty(node, "exec", "-it", greeter(node), "sh")
    try:
        term.send("echo tty-$((40+2)); exit\n")
        term.expect("tty-42")
        assert term.wait() == 0
    finally:
        term.kill()


def test_kill_9_of_the_daemon_loses_no_pod(node, kube):
    cid = greeter(node)
    pod_id = next(c["podSandboxId"] for c in containers_named(node, "greeter") if c["id"] == cid)
    node.daemon.kill()
    node.daemon.start(timeout=60)
    time.sleep(10)                      # kubelet relists (PLEG) every second: let it look several times
    # the same pod and container, still running: nothing restarted, nothing recreated by kubelet
    assert [p["id"] for p in crictl_json(node, "pods", "--name", "hello-pcd-node")["items"]] == [pod_id]
    assert [(c["id"], c["state"], c["metadata"]["attempt"]) for c in containers_named(node, "greeter")] == [
        (cid, "CONTAINER_RUNNING", 0)]
    assert crictl(node, "exec", "-s", cid, "echo", "alive").stdout.strip() == "alive"


def test_deleting_manifests_leaves_nothing(node, kube):
    for m in kube.manifests.iterdir():
        m.unlink()
    wait_for(lambda: not crictl_json(node, "pods")["items"] and not crictl_json(node, "ps", "-a")["containers"],
             240, "every pod and container gone")
    assert not pod_pins_in(node.subnet)
    veths = node.run("ip", "-o", "link", "show", "type", "veth", capture_output=True, text=True).stdout
    assert veths == "", veths
    ipam = [p.name for p in (node.base / "ipam").rglob("*") if p.is_file() and p.name[0].isdigit()]
    assert ipam == [], ipam
    assert mounts_under(str(node.base / "daemon" / "state")) == []
