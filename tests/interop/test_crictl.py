"""Every crictl command, through Kubernetes' own crictl, against pycontainerd (issue 13).

The node (:func:`tests.support.critest.cri_node`) is configured as a new user would: registry
mirrors to a local registry holding critest's images (built by cri-tools/images/build.sh), a
CNI bridge network, its own network namespace; crictl runs inside that namespace. The images
come through the mirrors by their public names, as kubelet would ask for them.

``CRICTL_RUNTIME=containerd`` runs this module against Debian's containerd 1.6.20 instead: the
expected gRPC codes and behaviours here are containerd's, and that run shows it (the marks for
our known bugs apply to pycontainerd only).

Interactive commands (``exec -it``, ``attach``) get a real pty (:func:`tests.support.crictl_pty.on_pty`).
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.support.crictl import crictl, crictl_argv, crictl_json, wait_for
from tests.support.crictl_pty import on_pty
from tests.support.critest import cri_node

pytestmark = [pytest.mark.root, pytest.mark.interop]

RUNTIME = os.environ.get("CRICTL_RUNTIME", "ours")
OURS = RUNTIME == "ours"
BUSYBOX = "registry.k8s.io/e2e-test-images/busybox:1.29-2"        # through the registry.k8s.io mirror
USER_IMAGE = "gcr.io/k8s-staging-cri-tools/test-image-user-uid:latest"
INSERTED_IMAGE = "registry.k8s.io/e2e-test-images/nginx:1.14-2"    # layers written by `umoci insert`


NO_WEBSOCKET = pytest.mark.xfail(not OURS, strict=True, reason="containerd 1.6.20 has no WebSocket streaming (403)")


# --------------------------------------------------------------------------------------
# fixtures and helpers


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    with cri_node(tmp_path_factory.mktemp("crictl") / "node", RUNTIME) as n:
        yield n


@pytest.fixture
def files(tmp_path):
    """``files(name, obj) -> path`` of a JSON config written for crictl."""
    def write(name: str, obj: dict) -> str:
        path = tmp_path / name
        path.write_text(json.dumps(obj))
        return str(path)
    return write


def pod_json(tmp_path, name: str = "") -> dict:
    name = name or f"pod-{uuid.uuid4().hex[:6]}"
    logs = tmp_path / f"logs-{name}"
    logs.mkdir()
    return {"metadata": {"name": name, "namespace": "crictl-test", "uid": uuid.uuid4().hex, "attempt": 0},
            "hostname": name, "log_directory": str(logs), "linux": {}}


def ctr_json(name: str, *command: str, image: str = BUSYBOX, **extra) -> dict:
    return {"metadata": {"name": name}, "image": {"image": image}, "command": list(command),
            "log_path": f"{name}.log", "linux": {}, **extra}


@pytest.fixture
def pod(node, tmp_path, files):
    """A running pod (through `crictl runp`) and its config file; removed afterwards."""
    cfg = pod_json(tmp_path)
    path = files("pod.json", cfg)
    pod_id = crictl(node, "runp", path).stdout.strip()
    yield pod_id, path, cfg
    crictl(node, "stopp", pod_id, check=False)
    crictl(node, "rmp", "-f", pod_id, check=False)


def start(node, pod, files, name: str, *command: str, **extra) -> str:
    pod_id, pod_path, _ = pod
    crictl(node, "pull", extra.get("image", BUSYBOX))
    cid = crictl(node, "create", pod_id, files(f"{name}.json", ctr_json(name, *command, **extra)), pod_path).stdout.strip()
    crictl(node, "start", cid)
    return cid


def state(node, cid: str) -> dict:
    return crictl_json(node, "inspect", cid)["status"]


def in_netns(node, *argv: str, **kw) -> subprocess.CompletedProcess:
    return node.run(*argv, capture_output=True, text=True, timeout=60, **kw)


def grpc_error(proc: subprocess.CompletedProcess, code: str) -> str:
    """crictl failed with gRPC ``code``; returns its message for further checks."""
    assert proc.returncode != 0, proc.stdout
    assert f"code = {code} desc = " in proc.stderr, proc.stderr
    return proc.stderr


# --------------------------------------------------------------------------------------
# runtime and images


def test_version(node):
    out = crictl(node, "version").stdout
    fields = dict(line.split(":", 1) for line in out.strip().splitlines())
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    assert fields["RuntimeApiVersion"] == "v1"
    assert fields["RuntimeName"] == ("pycontainerd" if OURS else "containerd")
    assert fields["RuntimeVersion"][0].isdigit() or fields["RuntimeVersion"].startswith("v"), fields
    assert fields["Version"] == "0.1.0"


def test_info_reports_runtime_and_network_ready(node):
    info = json.loads(crictl(node, "info").stdout)
    conditions = {c["type"]: c for c in info["status"]["conditions"]}
    assert conditions["RuntimeReady"]["status"] is True
    assert conditions["NetworkReady"]["status"] is True, conditions["NetworkReady"]


def test_pull_images_inspecti_rmi(node):
    out = crictl(node, "pull", USER_IMAGE).stdout
    assert out.startswith("Image is up to date for sha256:"), out
    image_id = out.split()[-1]
    images = crictl_json(node, "images")["images"]
    mine = [i for i in images if USER_IMAGE in i["repoTags"]]
    assert len(mine) == 1 and mine[0]["id"] == image_id
    assert any(d.startswith("gcr.io/k8s-staging-cri-tools/test-image-user-uid@sha256:") for d in mine[0]["repoDigests"])
    # the digest is the registry's, read back with curl inside the node
    head = in_netns(node, "curl", "-sI", "-H", "Accept: application/vnd.oci.image.manifest.v1+json",
                    "http://127.0.0.1:5001/v2/k8s-staging-cri-tools/test-image-user-uid/manifests/latest").stdout
    digest = next(line.split(":", 1)[1].strip() for line in head.splitlines()
                  if line.lower().startswith("docker-content-digest"))
    assert f"gcr.io/k8s-staging-cri-tools/test-image-user-uid@{digest}" in mine[0]["repoDigests"]
    inspected = crictl_json(node, "inspecti", USER_IMAGE)
    assert inspected["status"]["id"] == image_id
    assert inspected["status"]["uid"]["value"] == "1002"              # USER 1002 in the image config
    assert int(inspected["status"]["size"]) > 0
    table = [line.split() for line in crictl(node, "images").stdout.splitlines()]
    assert table[0][:3] == ["IMAGE", "TAG", "IMAGE"], table[0]
    assert ["gcr.io/k8s-staging-cri-tools/test-image-user-uid", "latest", image_id[len("sha256:"):][:13]] in [
        row[:3] for row in table]
    root = getattr(node.daemon, "root", None) or node.daemon.base / "root"  # ours, or containerd's
    blobs = root / "io.containerd.content.v1.content" / "blobs" / "sha256"
    assert image_id[len("sha256:"):] in os.listdir(blobs)  # the config blob
    rmi = crictl(node, "rmi", USER_IMAGE).stdout
    assert f"Deleted: {USER_IMAGE}" in rmi
    # the last name goes synchronously (containerd's SynchronousDelete): its blobs are gone on return
    assert image_id[len("sha256:"):] not in os.listdir(blobs)
    assert not [i for i in crictl_json(node, "images")["images"] if USER_IMAGE in i["repoTags"]]
    gone = crictl(node, "inspecti", USER_IMAGE, check=False)
    assert gone.returncode != 0 and "no such image" in gone.stderr and USER_IMAGE in gone.stderr, gone.stderr


def test_pull_image_whose_layer_umoci_insert_wrote(node):
    out = crictl(node, "pull", INSERTED_IMAGE).stdout
    assert out.startswith("Image is up to date for sha256:"), out
    crictl(node, "rmi", INSERTED_IMAGE)


def test_imagefsinfo(node):
    crictl(node, "pull", BUSYBOX)
    status = crictl_json(node, "imagefsinfo")["status"]
    fs = status["imageFilesystems"][0]
    assert fs["fsId"]["mountpoint"].startswith(str(node.base)), fs
    assert "overlayfs" in fs["fsId"]["mountpoint"], fs
    # containerd samples snapshot usage in the background: ask until it has a figure
    wait_for(lambda: int(crictl_json(node, "imagefsinfo")["status"]["imageFilesystems"][0]["usedBytes"]["value"]) > 0,
             what="image filesystem usage")


# --------------------------------------------------------------------------------------
# pods


def test_runp_pods_inspectp_stopp_rmp(node, tmp_path, files):
    cfg = pod_json(tmp_path, "lifecycle")
    cfg["labels"] = {"app": "crictl-test"}
    pod_id = crictl(node, "runp", files("pod.json", cfg)).stdout.strip()
    assert len(pod_id) == 64
    listed = crictl_json(node, "pods", "--label", "app=crictl-test")["items"]
    assert [p["id"] for p in listed] == [pod_id]
    assert listed[0]["state"] == "SANDBOX_READY" and listed[0]["metadata"]["name"] == "lifecycle"
    assert crictl(node, "pods", "-q", "--name", "lifecycle").stdout.split() == [pod_id]
    status = crictl_json(node, "inspectp", pod_id)["status"]
    assert status["state"] == "SANDBOX_READY"
    ip = status["network"]["ip"]
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(node.subnet), status["network"]   # the conflist's
    assert f"Stopped sandbox {pod_id}" in crictl(node, "stopp", pod_id).stdout
    assert crictl_json(node, "inspectp", pod_id)["status"]["state"] == "SANDBOX_NOTREADY"
    assert f"Removed sandbox {pod_id}" in crictl(node, "rmp", pod_id).stdout
    assert crictl_json(node, "pods", "--label", "app=crictl-test")["items"] == []


# --------------------------------------------------------------------------------------
# containers


def test_create_start_ps_inspect_logs_stop_rm(node, pod, files, tmp_path):
    pod_id, pod_path, cfg = pod
    crictl(node, "pull", BUSYBOX)
    cid = crictl(node, "create", pod_id, files("c.json", ctr_json(
        "worker", "sh", "-c", "echo started as $(id -u); exec sleep 600",
        labels={"role": "worker"}, envs=[{"key": "GREETING", "value": "hi"}])), pod_path).stdout.strip()
    assert state(node, cid)["state"] == "CONTAINER_CREATED"
    assert crictl(node, "start", cid).stdout.strip() == cid
    listed = crictl_json(node, "ps", "--pod", pod_id)["containers"]
    assert [(c["id"], c["state"], c["metadata"]["name"]) for c in listed] == [(cid, "CONTAINER_RUNNING", "worker")]
    assert crictl(node, "ps", "-q", "--label", "role=worker").stdout.split() == [cid]
    inspected = crictl_json(node, "inspect", cid)
    assert inspected["status"]["labels"]["role"] == "worker"
    assert inspected["status"]["logPath"] == f"{cfg['log_directory']}/worker.log"
    assert inspected["info"]["pid"] > 0
    wait_for(lambda: "started as 0" in crictl(node, "logs", cid).stdout, what="the container's first line")
    assert crictl(node, "stop", "--timeout", "2", cid).stdout.strip() == cid
    stopped = state(node, cid)
    assert stopped["state"] == "CONTAINER_EXITED" and stopped["exitCode"] == 143   # ended by the SIGTERM
    assert crictl(node, "rm", cid).stdout.strip() == cid
    assert crictl_json(node, "ps", "-a", "--pod", pod_id)["containers"] == []


def test_run_makes_pod_and_container(node, tmp_path, files):
    cfg = pod_json(tmp_path, "run")
    out = crictl(node, "run", files("c.json", ctr_json("once", "sh", "-c", "echo ran; sleep 600")),
                 files("pod.json", cfg)).stdout.strip()
    cid = out.splitlines()[-1]
    pods = crictl_json(node, "pods", "--name", "run")["items"]
    try:
        assert len(pods) == 1 and pods[0]["state"] == "SANDBOX_READY"
        st = state(node, cid)
        assert st["state"] == "CONTAINER_RUNNING" and st["metadata"]["name"] == "once"
        wait_for(lambda: crictl(node, "logs", cid).stdout == "ran\n", what="ran")
    finally:
        for p in pods:
            crictl(node, "stopp", p["id"], check=False)
            crictl(node, "rmp", "-f", p["id"], check=False)


def test_logs_tail_since_and_follow(node, pod, files):
    cid = start(node, pod, files, "talker", "sh", "-c",
                "for i in 1 2 3 4 5; do echo early$i; done; sleep 4; echo late; sleep 600")
    wait_for(lambda: "early5" in crictl(node, "logs", cid).stdout, what="early lines")
    time.sleep(1.2)
    since = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    wait_for(lambda: "late" in crictl(node, "logs", cid).stdout, what="the late line")
    assert crictl(node, "logs", cid).stdout == "".join(f"early{i}\n" for i in range(1, 6)) + "late\n"
    assert crictl(node, "logs", "--tail", "2", cid).stdout == "early5\nlate\n"
    assert crictl(node, "logs", "--since", since, cid).stdout == "late\n"
    stamped = crictl(node, "logs", "--timestamps", "--tail", "1", cid).stdout
    assert stamped.endswith(" late\n") and datetime.datetime.fromisoformat(stamped.split()[0][:26])

    follower = start(node, pod, files, "ticker", "sh", "-c", "for i in 1 2 3; do echo tick$i; sleep 1; done")
    follow = subprocess.run([*crictl_argv(node.address, node.netns), "logs", "-f", follower],
                            capture_output=True, text=True, timeout=60)
    # -f returns once the container has exited, with every line it wrote while following
    assert follow.returncode == 0, follow.stderr
    assert follow.stdout == "tick1\ntick2\ntick3\n"


def test_exec_sync(node, pod, files):
    cid = start(node, pod, files, "execs", "sleep", "600")
    assert crictl(node, "exec", "-s", cid, "sh", "-c", "echo out-$((6*7))").stdout.strip() == "out-42"
    failing = crictl(node, "exec", "-s", cid, "sh", "-c", "echo err >&2; exit 3", check=False)
    assert failing.returncode != 0 and "exited with 3: err" in failing.stderr, failing.stderr
    assert crictl(node, "exec", "-s", "--timeout", "2", cid, "id", "-u").stdout.strip() == "0"


@NO_WEBSOCKET
def test_exec_websocket(node, pod, files):
    cid = start(node, pod, files, "wsexec", "sleep", "600")
    out = crictl(node, "exec", "--transport", "websocket", cid, "sh", "-c", "echo ws-$((6*7)); exit 0")
    assert out.stdout == "ws-42\n"
    failing = crictl(node, "exec", "--transport", "websocket", cid, "sh", "-c", "exit 5", check=False)
    assert failing.returncode != 0 and "command terminated with exit code 5" in failing.stderr, failing.stderr


@NO_WEBSOCKET
def test_exec_websocket_sends_only_known_streams(node, pod, files):
    cid = start(node, pod, files, "wsquiet", "sleep", "600")
    out = crictl(node, "exec", "--transport", "websocket", cid, "true")
    assert "Unknown stream" not in out.stderr, out.stderr


def test_exec_spdy(node, pod, files):
    cid = start(node, pod, files, "spdyexec", "sleep", "600")
    assert crictl(node, "exec", cid, "sh", "-c", "echo spdy-$((6*7))").stdout == "spdy-42\n"


def test_exec_stdin(node, pod, files):
    cid = start(node, pod, files, "stdin", "sleep", "600")
    out = crictl(node, "exec", "-i", cid, "sh", "-c", "tr a-z A-Z", input="shout me\n")
    assert out.stdout == "SHOUT ME\n"


def test_exec_tty(node, pod, files):
    cid = start(node, pod, files, "tty", "sleep", "600")
    with on_pty(node, "exec", "-it", cid, "sh") as term:
        term.send(b"tty; echo in-$((6*7))\n")
        term.read_until(b"in-42")
        assert b"/dev/pts/" in term.out
        term.send(b"exit 0\n")
        assert term.wait() == 0


def test_attach(node, pod, files):
    cid = start(node, pod, files, "attached", "sh", stdin=True, tty=True)
    with on_pty(node, "attach", "-it", cid) as term:
        term.send(b"echo attached-$((2+3))\n")
        term.read_until(b"attached-5")
        term.send(b"exit\n")
        term.wait()
    wait_for(lambda: state(node, cid)["state"] == "CONTAINER_EXITED", what="the shell to exit")


def test_port_forward(node, pod, files):
    pod_id = pod[0]
    start(node, pod, files, "web", "sh", "-c",
          "mkdir -p /www && echo served-by-pod > /www/index.html && exec httpd -f -p 8080 -h /www")
    fwd = subprocess.Popen([*crictl_argv(node.address, node.netns), "port-forward", pod_id, "18080:8080"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = fwd.stdout.readline()
        assert "Forwarding from 127.0.0.1:18080 -> 8080" in line, line
        got = wait_for(lambda: in_netns(node, "curl", "-sf", "http://127.0.0.1:18080/index.html").stdout,
                       what="a reply through the forward")
        assert got == "served-by-pod\n"
    finally:
        fwd.kill()
        fwd.wait()


@pytest.fixture
def pod_in_cgroup(node, tmp_path, files):
    """A pod with a cgroup parent, as kubelet always gives (pod stats are read from it);
    the cgroup folders are removed afterwards."""
    parent = f"/pcd-crictl-{uuid.uuid4().hex[:8]}"
    cfg = pod_json(tmp_path)
    cfg["linux"] = {"cgroup_parent": parent}
    path = files("pod.json", cfg)
    pod_id = crictl(node, "runp", path).stdout.strip()
    try:
        yield pod_id, path, cfg
    finally:
        crictl(node, "stopp", pod_id, check=False)
        crictl(node, "rmp", "-f", pod_id, check=False)
        for top in Path("/sys/fs/cgroup").glob(f"*{parent}"):       # one per v1 controller
            for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
                with contextlib.suppress(OSError):
                    d.rmdir()
            with contextlib.suppress(OSError):
                top.rmdir()


def test_stats_and_statsp(node, pod_in_cgroup, files):
    pod = pod_in_cgroup
    pod_id = pod[0]
    cid = start(node, pod, files, "eater", "sh", "-c", "head -c 20000000 /dev/zero > /tmp/blob; exec sleep 600")
    wait_for(lambda: state(node, cid)["state"] == "CONTAINER_RUNNING", what="running")
    stats = wait_for(lambda: [s for s in crictl_json(node, "stats", "--id", cid)["stats"]
                              if int(s.get("memory", {}).get("workingSetBytes", {}).get("value", 0)) > 0],
                     what="container memory stats")
    assert stats[0]["attributes"]["id"] == cid and stats[0]["attributes"]["metadata"]["name"] == "eater"
    assert int(stats[0]["cpu"]["usageCoreNanoSeconds"]["value"]) > 0
    pstats = crictl_json(node, "statsp", "--id", pod_id)["stats"]
    assert len(pstats) == 1 and pstats[0]["attributes"]["id"] == pod_id
    linux = pstats[0]["linux"]
    assert int(linux["memory"]["workingSetBytes"]["value"]) > 0
    assert cid in [c["attributes"]["id"] for c in linux["containers"]]
    assert linux["network"]["defaultInterface"]["name"] == "eth0"


def test_update_resources(node, pod, files):
    cid = start(node, pod, files, "limited", "sleep", "600")
    crictl(node, "update", "--memory", str(96 * 1024 * 1024), "--cpu-quota", "20000", "--cpu-period", "100000", cid)
    limit = crictl(node, "exec", "-s", cid, "sh", "-c",
                   "cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes").stdout
    assert limit.strip() == str(96 * 1024 * 1024)
    quota = crictl(node, "exec", "-s", cid, "sh", "-c",
                   "cat /sys/fs/cgroup/cpu.max 2>/dev/null || cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us").stdout
    assert quota.split()[0] == "20000"
    resources = state(node, cid)["resources"]["linux"]
    assert int(resources["memoryLimitInBytes"]) == 96 * 1024 * 1024 and int(resources["cpuQuota"]) == 20000


@pytest.mark.xfail(not OURS, strict=True, reason="containerd 1.6.20 has no GetContainerEvents (1.7 added it)")
def test_events(node, pod, files):
    watcher = subprocess.Popen([*crictl_argv(node.address, node.netns), "events", "-o", "json"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)           # let the stream open before the events happen
        cid = start(node, pod, files, "evented", "true")
        wait_for(lambda: state(node, cid)["state"] == "CONTAINER_EXITED", what="exit")
        crictl(node, "rm", cid)
        time.sleep(1.0)
    finally:
        watcher.terminate()
        out, err = watcher.communicate(timeout=30)
    decoder, pos, seen = json.JSONDecoder(), 0, []
    while (pos := out.find("{", pos)) != -1:
        event, pos = decoder.raw_decode(out, pos)
        seen.append(event)
    mine = [e["containerEventType"] for e in seen if e.get("containerId") == cid]
    assert mine == ["CONTAINER_CREATED_EVENT", "CONTAINER_STARTED_EVENT", "CONTAINER_STOPPED_EVENT",
                    "CONTAINER_DELETED_EVENT"], (mine, err)
    started = next(e for e in seen if e.get("containerId") == cid and e["containerEventType"] == "CONTAINER_STARTED_EVENT")
    assert started["podSandboxStatus"]["id"] == pod[0]


# --------------------------------------------------------------------------------------
# bad input: containerd's code and a message a person can act on; nothing leaks


def test_unknown_ids(node):
    missing = "0" * 64
    for cmd in ("inspect", "start", "logs"):
        proc = crictl(node, cmd, missing, check=False)
        assert proc.returncode != 0, cmd
    assert missing in grpc_error(crictl(node, "inspect", missing, check=False), "NotFound")
    assert "not found" in grpc_error(crictl(node, "inspectp", missing, check=False), "NotFound")
    assert missing in grpc_error(crictl(node, "start", missing, check=False), "NotFound")
    assert missing in grpc_error(crictl(node, "exec", "-s", missing, "true", check=False), "NotFound")


@pytest.mark.xfail(not OURS, strict=True, reason="containerd 1.6.20 answers NotFound (critest's Idempotence specs)")
def test_stop_unknown_ids_succeeds(node):
    """The CRI contract (critest: Idempotence): stopping what is not there succeeds. (crictl's
    rm and rmp ask for the status first, so through crictl they report NotFound on any runtime.)"""
    missing = "1" * 64
    for cmd in ("stop", "stopp"):
        proc = crictl(node, cmd, missing, check=False)
        assert proc.returncode == 0, (cmd, proc.stderr)


def test_pod_config_without_metadata(node, tmp_path, files):
    """crictl itself refuses it (the runtime is never asked): a message naming what is missing."""
    before = crictl_json(node, "pods")["items"]
    proc = crictl(node, "runp", files("bad.json", {"hostname": "nometa", "linux": {}}), check=False)
    assert proc.returncode != 0 and "load podSandboxConfig: metadata is not set" in proc.stderr, proc.stderr
    assert crictl_json(node, "pods")["items"] == before


def test_missing_image(node, pod, files):
    ref = "registry.k8s.io/e2e-test-images/no-such-image:1.0"
    msg = grpc_error(crictl(node, "pull", ref, check=False), "NotFound")
    assert ref in msg and "not found" in msg
    pod_id, pod_path, _ = pod
    create = crictl(node, "create", "--no-pull", pod_id, files("c.json", ctr_json("ghost", "true", image=ref)),
                    pod_path, check=False)
    assert ref in grpc_error(create, "NotFound")


def test_missing_host_path_is_made_a_directory(node, pod, files, tmp_path):
    """containerd's CRI makes a mount's missing host path (kubelet's hostPath volumes of
    type "" count on it); a file in the way is its 'failed to stat' error."""
    host = tmp_path / "made" / "here"
    cid = start(node, pod, files, "hostpath", "sh", "-c", "echo hi > /data/f; sleep 1000",
                mounts=[{"container_path": "/data", "host_path": str(host)}])
    wait_for(lambda: (host / "f").exists(), what="the container's file on the host")
    assert host.is_dir() and (host / "f").read_text() == "hi\n"
    crictl(node, "stop", "-t", "0", cid)
    (tmp_path / "plain").write_text("")
    pod_id, pod_path, _ = pod
    bad = ctr_json("blocked", "true", mounts=[{"container_path": "/data", "host_path": str(tmp_path / "plain" / "x")}])
    proc = crictl(node, "create", pod_id, files("blocked.json", bad), pod_path, check=False)
    assert "failed to stat" in grpc_error(proc, "Unknown")
    nul = ctr_json("nul", "true", mounts=[{"container_path": "/data", "host_path": str(tmp_path / "a\0b")}])
    proc = crictl(node, "create", pod_id, files("nul.json", nul), pod_path, check=False)
    assert "NUL byte" in grpc_error(proc, "InvalidArgument")


def test_exec_into_stopped_container(node, pod, files):
    cid = start(node, pod, files, "short", "true")
    wait_for(lambda: state(node, cid)["state"] == "CONTAINER_EXITED", what="exit")
    proc = crictl(node, "exec", "-s", cid, "true", check=False)
    assert "CONTAINER_EXITED" in grpc_error(proc, "Unknown")


def test_port_forward_to_closed_port(node, pod, files):
    pod_id = pod[0]
    start(node, pod, files, "idle", "sleep", "600")
    fwd = subprocess.Popen([*crictl_argv(node.address, node.netns), "port-forward", pod_id, "18081:9999"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "Forwarding from 127.0.0.1:18081 -> 9999" in fwd.stdout.readline()
        got = in_netns(node, "curl", "-s", "http://127.0.0.1:18081/")
        assert got.returncode != 0
    finally:
        fwd.kill()
        err = fwd.communicate(timeout=30)[1]
    assert "9999" in err and "connection refused" in err.lower(), err


def test_failed_start_leaves_pod_and_siblings_alone(node, pod, files):
    pod_id, pod_path, _ = pod
    sibling = start(node, pod, files, "steady", "sleep", "600")
    bad = crictl(node, "create", pod_id, files("bad.json", ctr_json("typo", "/nonexistent")), pod_path).stdout.strip()
    proc = crictl(node, "start", bad, check=False)
    assert "/nonexistent" in grpc_error(proc, "Unknown")
    failed = state(node, bad)
    assert (failed["state"], failed["reason"], failed["exitCode"]) == ("CONTAINER_EXITED", "StartError", 128)
    assert "/nonexistent" in failed["message"]
    assert crictl_json(node, "inspectp", pod_id)["status"]["state"] == "SANDBOX_READY"
    assert state(node, sibling)["state"] == "CONTAINER_RUNNING"
