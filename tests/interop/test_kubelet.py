"""A real kubelet runs pods on pycontainerd (issue 13).

Kubernetes' own kubelet (``tests.support.kubelet``: standalone, static pods from a manifest
folder, no API server) drives our daemon through the CRI, in the daemon's network namespace
with a CNI bridge on a private subnet. What kubelet made is read back through crictl (and
the files kubelet and the pods wrote); a failure shows the end of kubelet's log.

The tests run in file order on one kubelet: the last removes every manifest and checks that
nothing of any pod is left.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pycontainerd.testing import mounts_under, processes_mentioning
from tests.support.cri import CRIClient, cri_env
from tests.support.crictl import crictl, crictl_json
from tests.support.crictl_pty import on_pty
from tests.support.kubelet import Kubelet

pytestmark = [pytest.mark.integration, pytest.mark.root]

TICKER = "echo hello-from-kubelet; i=0; while true; do echo tick $i; i=$((i+1)); sleep 1; done"
RESTART_COUNT = "io.kubernetes.container.restartCount"


@pytest.fixture(scope="module")
def env(tmp_path_factory, registry, ctr_bin):
    subnet = f"10.{random.randint(200, 250)}.{random.randint(0, 255)}.0/24"
    with cri_env(tmp_path_factory.mktemp("kubelet") / "cri", registry, netns=True, subnet=subnet, ctr=ctr_bin,
                 restrict_oom=True) as e:
        yield e


@pytest.fixture(scope="module")
def kubelet(env, tmp_path_factory):
    k = Kubelet(tmp_path_factory.mktemp("kubelet-node"), env)
    wrong = []
    try:
        yield k.start()
    finally:
        k.stop()
        shutil.copy(env.daemon.log_path, k.base / "daemon.log")   # cri_env removes its base; keep both logs
        env.client.remove_everything()     # what a failed test left, before its cgroups can go
        wrong = k.remove_cgroups()
    assert not wrong, f"kubelet's cgroups: {wrong}"


def busybox(env, name: str, script: str, **extra) -> dict:
    return {"name": name, "image": env.images.busybox, "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", script], **extra}


@pytest.fixture(scope="module")
def crashing(env, kubelet, tmp_path_factory):
    """A static pod whose container appends its start time to a host folder and exits 3.
    Started first: its back-offs take longest, so it loops while the other tests run."""
    starts = tmp_path_factory.mktemp("crash-starts")
    pod = kubelet.add_pod(
        "crashing", [busybox(env, "crash", "cut -d' ' -f1 /proc/uptime >> /data/starts; exit 3",
                             volumeMounts=[{"name": "data", "mountPath": "/data"}])],
        volumes=[{"name": "data", "hostPath": {"path": str(starts), "type": "Directory"}}])
    return pod, starts / "starts"


@pytest.fixture(scope="module")
def hello(env, kubelet, crashing):
    """A static pod whose container prints a greeting, then a numbered tick a second."""
    pod = kubelet.add_pod("hello", [busybox(env, "main", TICKER)])
    c = kubelet.wait("the hello pod running", lambda: kubelet.running_container(pod, "main"))
    return pod, c


def inspect(env, cid: str, what: str = "inspect") -> dict:
    return json.loads(crictl(env, what, "-o", "json", cid).stdout)


def restart_count(c: dict) -> int:
    return int(c["annotations"][RESTART_COUNT])


# -- a pod runs, its logs read back ------------------------------------------------------------


def test_static_pod_runs_and_its_logs_read_back(env, kubelet, hello):
    pod, c = hello
    sandbox = kubelet.sandboxes(pod)
    assert [s["state"] for s in sandbox] == ["SANDBOX_READY"], sandbox
    labels = sandbox[0]["labels"]
    assert labels["io.kubernetes.pod.namespace"] == "default"
    kubelet.wait("a tick in crictl logs", lambda: "tick 1" in crictl(env, "logs", c["id"]).stdout)
    out = crictl(env, "logs", c["id"]).stdout
    assert out.startswith("hello-from-kubelet\ntick 0\n"), out

    # the file kubelet asked for: <podLogsDir>/<namespace>_<name>_<uid>/<container>/<restarts>.log
    log_path = inspect(env, c["id"])["status"]["logPath"]
    expected = kubelet.pod_logs / f"default_{pod}_{labels['io.kubernetes.pod.uid']}" / "main" / "0.log"
    assert log_path == str(expected)
    first = expected.read_text().splitlines()[0].split(" ", 3)
    assert first[1:] == ["stdout", "F", "hello-from-kubelet"], first     # CRI log format: time stream tag text


def test_containers_run_in_kubelets_pod_cgroup(env, kubelet, hello):
    """kubelet makes a cgroup per pod under its QoS tree and hands it to the runtime as the
    sandbox's cgroup parent: the container's process is in a cgroup of its own inside it."""
    pod, c = hello
    uid = kubelet.sandboxes(pod)[0]["labels"]["io.kubernetes.pod.uid"]
    info = inspect(env, c["id"])["info"]
    expected = f"{kubelet.cgroup_root}/kubepods/besteffort/pod{uid}/{c['id']}"
    assert info["runtimeSpec"]["linux"]["cgroupsPath"] == expected
    with open(f"/proc/{info['pid']}/cgroup") as f:
        paths = {line.split(":")[1]: line.split(":", 2)[2].strip() for line in f}
    assert paths["memory"] == paths["pids"] == expected, paths


# -- crictl exec -it into a kubelet-made pod ------------------------------------------------------


def test_crictl_exec_it_reaches_a_kubelet_pod(env, kubelet, hello):
    pod, c = hello
    with on_pty(env, "exec", "-it", c["id"], "sh") as term:
        term.until_shell_answers()
        term.send(b"echo host=$(hostname); cat /etc/resolv.conf\r")
        term.read_until(f"host={pod}".encode())        # kubelet names the pod's host after the pod
        term.read_until(b"search pcd.test")            # and gives it the node's resolv.conf
        term.send(b"exit 7\r")
        rc = term.wait()
    assert rc == 1 and b"command terminated with exit code 7" in term.out, term.out


# -- a liveness probe restarts a container -------------------------------------------------------


def test_failing_liveness_probe_restarts_the_container(env, kubelet):
    script = "touch /tmp/healthy; sleep 4; rm /tmp/healthy; exec sleep 3600"
    probe = {"exec": {"command": ["cat", "/tmp/healthy"]}, "periodSeconds": 1, "failureThreshold": 1,
             "timeoutSeconds": 5}
    pod = kubelet.add_pod("probed", [busybox(env, "probed", script, livenessProbe=probe)])
    first = kubelet.wait("the probed pod running", lambda: kubelet.running_container(pod, "probed"))
    assert restart_count(first) == 0

    def restarted():
        c = kubelet.running_container(pod, "probed")
        return c if c is not None and c["id"] != first["id"] else None

    second = kubelet.wait("the probed container restarted", restarted)
    assert restart_count(second) == 1 and second["metadata"]["attempt"] == 1, second
    assert second["podSandboxId"] == first["podSandboxId"]       # the container restarts, not the pod
    old = inspect(env, first["id"])["status"]
    assert old["state"] == "CONTAINER_EXITED" and old["exitCode"] == 137, old   # sleep, pid 1, ignores TERM
    assert "failed liveness probe" in kubelet.log(tail=100000)
    kubelet.remove_pod("probed")


# -- a crash loop backs off ---------------------------------------------------------------------


def uptimes(path: Path) -> list[float]:
    try:
        return [float(x) for x in path.read_text().split()]
    except FileNotFoundError:
        return []


def test_crash_looping_container_backs_off(env, kubelet, crashing):
    """The container records when it starts (the kernel's uptime, which every container
    shares) and fails. kubelet restarts it at once, then backs off 10 s, 20 s, ...: the gaps
    between its starts grow, each at least the back-off kubelet announced."""
    pod, starts = crashing
    kubelet.wait("four starts of the crashing container", lambda: len(uptimes(starts)) >= 4, timeout=240)
    t = uptimes(starts)[:4]
    gaps = [b - a for a, b in zip(t, t[1:])]
    # kubelet logs a back-off at each sync it skips: one entry per distinct period
    announced = re.findall(rf"back-off (\d+)s restarting failed container=crash pod={pod}_", kubelet.log(tail=100000))
    backoffs = [int(s) for s in dict.fromkeys(announced)]
    assert backoffs[:2] == [10, 20], backoffs
    assert gaps == sorted(gaps) and gaps[1] >= backoffs[0] and gaps[2] >= backoffs[1], (t, gaps, backoffs)
    crashed = [c for c in kubelet.containers(pod, "crash") if c["state"] == "CONTAINER_EXITED"]
    assert crashed and restart_count(crashed[-1]) >= 2, crashed
    st = inspect(env, crashed[-1]["id"])["status"]
    assert st["exitCode"] == 3 and st["reason"] == "Error", st
    kubelet.remove_pod("crashing")


# -- a kill -9 of the daemon loses no pod ---------------------------------------------------------


def test_daemon_killed_loses_no_pod(env, kubelet, hello):
    pod, c = hello
    sandbox = kubelet.sandboxes(pod)
    env.client.close()
    env.daemon.kill()
    env.daemon.start()
    env.client = CRIClient(env.daemon.address)
    # kubelet talks to the new daemon: a pod added now runs ...
    later = kubelet.add_pod("later", [busybox(env, "main", "exec sleep 3600")])
    kubelet.wait("a pod added after the restart running", lambda: kubelet.running_container(later, "main"))
    # ... and the old one is the same pod, the same container, still running and logging
    assert kubelet.sandboxes(pod) == sandbox
    now = kubelet.running_container(pod, "main")
    assert now is not None and now["id"] == c["id"] and restart_count(now) == 0, (now, c)
    tick = max(int(line.split()[1]) for line in crictl(env, "logs", c["id"]).stdout.splitlines()
               if line.startswith("tick "))
    kubelet.wait(f"tick {tick + 2} logged after the restart",
                 lambda: f"tick {tick + 2}\n" in crictl(env, "logs", c["id"]).stdout)


# -- deleting the manifests removes every pod, and nothing is left -------------------------------


def _netns_paths(env) -> set[str]:
    paths = set()
    for s in crictl_json(env, "pods")["items"]:
        spec = inspect(env, s["id"], "inspectp")["info"]["runtimeSpec"]
        paths |= {ns["path"] for ns in spec["linux"]["namespaces"] if ns["type"] == "network" and ns.get("path")}
    return paths


def test_deleting_the_manifests_removes_the_pods(env, kubelet, hello):
    ids = [s["id"] for s in crictl_json(env, "pods")["items"]]
    ids += [c["id"] for c in crictl_json(env, "ps", "-a")["containers"]]
    netns = _netns_paths(env)
    assert ids and netns
    kubelet.remove_all_pods()

    def gone():
        return not crictl_json(env, "pods")["items"] and not crictl_json(env, "ps", "-a")["containers"]

    kubelet.wait("every pod and container removed", gone, timeout=180)
    kubelet.wait("kubelet removing the pods' cgroups", lambda: not kubelet.cgroups("kubepods/*/pod*"))
    base = str(env.daemon.base)
    assert mounts_under(base) == []
    assert [p for p in processes_mentioning(base) if p != env.daemon.proc.pid] == []
    assert [p for p in netns if os.path.exists(p)] == []
    veths = subprocess.run(["ip", "-n", os.path.basename(env.netns), "-j", "link", "show", "type", "veth"],
                           capture_output=True, text=True, check=True).stdout
    assert json.loads(veths or "[]") == []
    ipam = env.base / "ipam" / "pods"
    assert sorted(p.name for p in ipam.iterdir() if not p.name.startswith(("last_reserved_ip", "lock"))) == []
    left = [f"{d}/{i}" for d in os.listdir("/sys/fs/cgroup") for i in ids
            if os.path.exists(os.path.join("/sys/fs/cgroup", d, i))]
    assert left == []
