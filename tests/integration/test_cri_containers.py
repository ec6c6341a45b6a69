"""CRI containers against a real daemon and runc: create/start/exec/stop/remove, logs in the
CRI format, status, filters, resources, security context, stats, events and bad input.
Pods here share the host's network (no CNI needed); the CNI tests are in test_cri_pods.py.

critest behaviours covered: container lifecycle (create, start, stop, remove, status), stop
with a grace period then kill, idempotent stop/remove, ListContainers filters (id, state,
sandbox, labels), ExecSync (output, exit code, timeout), container logs (stdout/stderr, CRI
format, partial lines, ReopenContainerLog), UpdateContainerResources, ContainerStats and
ListContainerStats, run as user / username / group with supplemental groups, read-only
rootfs, no_new_privs, mounts (read-only, propagation), env and working dir, duplicate names.
"""

from __future__ import annotations

import json
import os
import threading
import time

import grpc
import pytest

from pycontainerd.api.cri.runtime.v1 import api_pb2 as cri
from pycontainerd.cri.logs import parse_entry
from tests.support.cri import container_config, cri_env, pod_config

pytestmark = [pytest.mark.integration, pytest.mark.root]

MAX_LINE = 64


@pytest.fixture
def env(tmp_path, registry):
    with cri_env(tmp_path / "cri", registry, max_line=MAX_LINE) as e:
        e.client.pull(e.images.busybox)
        yield e


@pytest.fixture
def pod(env):
    cfg = pod_config("box-pod", host_network=True, log_dir=str(env.log_dir / "box-pod"), labels={"pod": "box"})
    return env.client.run_pod(cfg), cfg


def rpc_error(fn, *args, **kw):
    with pytest.raises(grpc.RpcError) as err:
        fn(*args, **kw)
    return err.value.code(), err.value.details()


def log_entries(path):
    out = []
    with open(path, "rb") as f:
        for line in f.read().splitlines(keepends=True):
            assert line.endswith(b"\n")
            out.append(parse_entry(line))
    return out


def run(env, pod, name, command, **kw):
    pid, cfg = pod
    cid = env.client.create(pid, container_config(name, env.images.busybox, command=command, **kw), cfg)
    env.client.start(cid)
    return cid


def test_lifecycle_logs_and_status(env, pod):
    c = env.client
    pid, cfg = pod
    long = "x" * (MAX_LINE * 2 + 5)
    script = f"echo out-1; echo err-1 >&2; echo {long}; printf 'no-newline'; exit 3"
    cid = c.create(pid, container_config("logger", env.images.busybox, command=["sh", "-c", script],
                                         log_path="logger/0.log", labels={"role": "logger"},
                                         annotations={"a": "b"}), cfg)
    st = c.status(cid).status
    assert st.state == cri.CONTAINER_CREATED and st.created_at > 0 and st.started_at == 0
    assert st.log_path == str(env.log_dir / "box-pod" / "logger" / "0.log")
    c.start(cid)
    st = c.wait_state(cid, cri.CONTAINER_EXITED)
    assert st.state == cri.CONTAINER_EXITED and st.exit_code == 3 and st.reason == "Error"
    assert st.created_at < st.started_at <= st.finished_at
    assert dict(st.labels) == {"role": "logger"} and dict(st.annotations) == {"a": "b"}
    assert st.image_id.startswith("sha256:") and st.image.image == env.images.busybox
    assert st.image_ref.startswith(env.images.busybox.rsplit(":", 1)[0] + "@sha256:")
    log_path = st.log_path
    entries = log_entries(log_path)
    stdout = [(tag, content) for _, stream, tag, content in entries if stream == "stdout"]
    stderr = [(tag, content) for _, stream, tag, content in entries if stream == "stderr"]
    assert stdout == [("F", b"out-1"), ("P", long[:MAX_LINE].encode()), ("P", long[MAX_LINE:2 * MAX_LINE].encode()),
                      ("F", long[2 * MAX_LINE:].encode()), ("P", b"no-newline")]
    assert stderr == [("F", b"err-1")]
    # a container that ran to success
    ok = run(env, pod, "ok", ["true"])
    st = c.wait_state(ok, cri.CONTAINER_EXITED)
    assert (st.exit_code, st.reason) == (0, "Completed")
    # verbose status carries the runtime spec and the sandbox
    info = json.loads(c.status(cid, verbose=True).info["info"])
    assert info["sandboxID"] == pid and info["runtimeSpec"]["process"]["args"][0] == "sh"
    # start twice is refused; stop and remove are idempotent
    code, details = rpc_error(c.start, cid)
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "CONTAINER_EXITED" in details
    c.StopContainer(cri.StopContainerRequest(container_id=cid, timeout=1))
    c.RemoveContainer(cri.RemoveContainerRequest(container_id=cid))
    c.RemoveContainer(cri.RemoveContainerRequest(container_id=cid))
    c.StopContainer(cri.StopContainerRequest(container_id=cid))
    c.RemoveContainer(cri.RemoveContainerRequest(container_id="0" * 64))
    code, _ = rpc_error(c.status, cid)
    assert code == grpc.StatusCode.NOT_FOUND
    assert os.path.exists(log_path)  # the log belongs to the kubelet


def test_stop_grace_period_then_kill(env, pod):
    c = env.client
    graceful = run(env, pod, "graceful", ["sh", "-c", "trap 'exit 42' TERM; while true; do sleep 0.1; done"])
    stubborn = run(env, pod, "stubborn", ["sh", "-c", "trap '' TERM; while true; do sleep 0.1; done"])
    assert c.status(graceful).status.state == cri.CONTAINER_RUNNING
    time.sleep(0.3)  # let the shells install their traps
    t = time.monotonic()
    c.StopContainer(cri.StopContainerRequest(container_id=graceful, timeout=10))
    assert time.monotonic() - t < 5
    st = c.status(graceful).status
    assert (st.state, st.exit_code) == (cri.CONTAINER_EXITED, 42)
    t = time.monotonic()
    c.StopContainer(cri.StopContainerRequest(container_id=stubborn, timeout=1))
    took = time.monotonic() - t
    st = c.status(stubborn).status
    assert (st.state, st.exit_code, st.reason) == (cri.CONTAINER_EXITED, 137, "Error")
    assert 0.9 < took < 8
    # timeout 0: killed at once
    now = run(env, pod, "now", ["sleep", "1000"])
    c.StopContainer(cri.StopContainerRequest(container_id=now, timeout=0))
    assert c.status(now).status.exit_code == 137


def test_exec_sync(env, pod):
    c = env.client
    cid = run(env, pod, "exec", ["sleep", "1000"], envs={"GREETING": "hi"}, working_dir="/tmp")
    r = c.exec(cid, "sh", "-c", "echo $GREETING; pwd; echo oops >&2; exit 7")
    assert (r.stdout, r.stderr, r.exit_code) == (b"hi\n/tmp\n", b"oops\n", 7)
    big = c.exec(cid, "sh", "-c", "head -c 300000 /dev/zero")
    assert len(big.stdout) == 300000 and big.exit_code == 0
    t = time.monotonic()
    code, details = rpc_error(c.exec, cid, "sleep", "30", timeout=1)
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED and "timeout" in details
    assert time.monotonic() - t < 15
    code, _ = rpc_error(c.exec, cid, "/no/such/binary")
    assert code != grpc.StatusCode.OK
    assert c.exec(cid, "true").exit_code == 0  # the container is fine after all that
    c.StopContainer(cri.StopContainerRequest(container_id=cid))
    code, details = rpc_error(c.exec, cid, "true")
    assert code == grpc.StatusCode.UNKNOWN and "container is in CONTAINER_EXITED state" in details  # containerd's


def test_reopen_container_log(env, pod):
    c = env.client
    cid = run(env, pod, "rotating", ["sh", "-c", "i=0; while true; do echo line-$i; i=$((i+1)); sleep 0.05; done"],
              log_path="rotating.log")
    path = c.status(cid).status.log_path
    time.sleep(0.5)
    os.rename(path, path + ".1")
    c.ReopenContainerLog(cri.ReopenContainerLogRequest(container_id=cid))
    time.sleep(0.5)
    old = [e[3] for e in log_entries(path + ".1")]
    new = [e[3] for e in log_entries(path)]
    assert old and new and old[0] == b"line-0"
    assert int(new[0].split(b"-")[1]) >= int(old[-1].split(b"-")[1])
    c.StopContainer(cri.StopContainerRequest(container_id=cid))
    code, _ = rpc_error(c.ReopenContainerLog, cri.ReopenContainerLogRequest(container_id=cid))
    assert code == grpc.StatusCode.FAILED_PRECONDITION


def test_list_filters(env, pod):
    c = env.client
    pid, _ = pod
    a = run(env, pod, "a", ["sleep", "1000"], labels={"tier": "front"})
    b = run(env, pod, "b", ["true"], labels={"tier": "back"})
    c.wait_state(b, cri.CONTAINER_EXITED)
    created = c.create(pid, container_config("c", env.images.busybox, command=["true"], labels={"tier": "front"}),
                       pod[1])

    def ids(**f):
        return {x.id for x in c.ListContainers(cri.ListContainersRequest(filter=cri.ContainerFilter(**f))).containers}

    assert {a, b, created} == {x.id for x in c.ListContainers(cri.ListContainersRequest()).containers}
    assert ids(id=a) == {a} and ids(id=a[:12]) == {a}
    assert ids(state=cri.ContainerStateValue(state=cri.CONTAINER_RUNNING)) == {a}
    assert ids(state=cri.ContainerStateValue(state=cri.CONTAINER_EXITED)) == {b}
    assert ids(state=cri.ContainerStateValue(state=cri.CONTAINER_CREATED)) == {created}
    assert ids(label_selector={"tier": "front"}) == {a, created}
    assert ids(pod_sandbox_id=pid[:10], label_selector={"tier": "front"},
               state=cri.ContainerStateValue(state=cri.CONTAINER_RUNNING)) == {a}
    assert ids(pod_sandbox_id="f" * 64) == set()
    listed = {x.id: x for x in c.ListContainers(cri.ListContainersRequest()).containers}
    assert listed[a].pod_sandbox_id == pid and listed[a].metadata.name == "a"
    assert listed[a].image_ref == listed[a].image_id and listed[a].image_id.startswith("sha256:")
    # streamed lists hold the same items
    streamed = [x.id for r in c.runtime.StreamContainers(cri.StreamContainersRequest()) for x in r.containers]
    assert set(streamed) == {a, b, created}


def test_security_context_user_and_mounts(env, pod, tmp_path):
    c = env.client
    pid, cfg = pod
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o777)  # writable for the container's uid 1000
    (data / "file").write_text("from host\n")
    cc = container_config("user", env.images.busybox, command=["sleep", "1000"], mounts=[
        cri.Mount(container_path="/ro", host_path=str(data), readonly=True),
        cri.Mount(container_path="/rw", host_path=str(data))])
    sc = cc.linux.security_context
    sc.run_as_user.value = 1000
    sc.run_as_group.value = 1000
    sc.supplemental_groups.extend([3000])
    sc.readonly_rootfs = True
    sc.no_new_privs = True
    cid = c.create(pid, cc, cfg)
    c.start(cid)
    r = c.exec(cid, "sh", "-c", "id -u; id -g; id -G; grep NoNewPrivs /proc/self/status; cat /ro/file; "
                                "touch /ro/x 2>/dev/null && echo ro-writable; touch /rw/y && echo rw-ok; "
                                "touch /rootfs-file 2>/dev/null && echo rootfs-writable; echo done")
    out = r.stdout.decode().split("\n")
    assert out[0] == "1000" and out[1] == "1000"
    assert set(out[2].split()) == {"1000", "2000", "3000"}        # 2000: the image's group "extra"
    assert out[3].split() == ["NoNewPrivs:", "1"] and out[4] == "from host"
    assert "ro-writable" not in out and "rw-ok" in out and "rootfs-writable" not in out
    assert (data / "y").exists()
    st = c.status(cid).status
    assert st.user.linux.uid == 1000 and set(st.user.linux.supplemental_groups) >= {1000, 2000, 3000}
    assert [m.container_path for m in st.mounts] == ["/ro", "/rw"]
    # by name: resolved in the image's /etc/passwd
    named = container_config("named", env.images.busybox, command=["sleep", "1000"])
    named.linux.security_context.run_as_username = "app"
    cid2 = c.create(pid, named, cfg)
    c.start(cid2)
    assert c.exec(cid2, "id", "-un").stdout == b"app\n"


def test_resources_update_and_stats(env, pod):
    c = env.client
    pid, cfg = pod
    cc = container_config("res", env.images.busybox, command=["sleep", "1000"])
    cc.linux.resources.memory_limit_in_bytes = 64 << 20
    cc.linux.resources.cpu_shares = 512
    cc.linux.resources.oom_score_adj = 500
    cid = c.create(pid, cc, cfg)
    c.start(cid)
    assert c.exec(cid, "cat", "/proc/self/oom_score_adj").stdout == b"500\n"
    spec = json.loads(c.status(cid, verbose=True).info["info"])["runtimeSpec"]
    cg = spec["linux"]["cgroupsPath"]
    mem = f"/sys/fs/cgroup/memory{cg}/memory.limit_in_bytes"
    v2 = f"/sys/fs/cgroup{cg}/memory.max"
    limit_file = mem if os.path.exists(mem) else v2
    assert int(open(limit_file).read()) == 64 << 20
    st = c.status(cid).status
    assert st.resources.linux.memory_limit_in_bytes == 64 << 20 and st.resources.linux.cpu_shares == 512
    c.UpdateContainerResources(cri.UpdateContainerResourcesRequest(
        container_id=cid, linux=cri.LinuxContainerResources(memory_limit_in_bytes=128 << 20)))
    assert int(open(limit_file).read()) == 128 << 20
    assert c.status(cid).status.resources.linux.memory_limit_in_bytes == 128 << 20
    stats = c.ContainerStats(cri.ContainerStatsRequest(container_id=cid)).stats
    assert stats.attributes.id == cid and stats.cpu.usage_core_nano_seconds.value > 0
    assert stats.memory.working_set_bytes.value > 0 and stats.memory.available_bytes.value > 0
    assert stats.writable_layer.fs_id.mountpoint.endswith("overlayfs")
    listed = c.ListContainerStats(cri.ListContainerStatsRequest(filter=cri.ContainerStatsFilter(pod_sandbox_id=pid)))
    assert [s.attributes.id for s in listed.stats] == [cid]
    pod_stats = c.PodSandboxStats(cri.PodSandboxStatsRequest(pod_sandbox_id=pid)).stats
    assert pod_stats.linux.memory.usage_bytes.value > 0 and pod_stats.linux.process.process_count.value >= 2
    assert [s.attributes.id for s in pod_stats.linux.containers] == [cid]
    # a score below the daemon's own is clamped when restricted: on hosts without
    # CAP_SYS_RESOURCE (as these) always, else with restrict_oom_score_adj
    from pycontainerd.cri.util import can_lower_oom_score_adj

    restricted = not can_lower_oom_score_adj()
    assert json.loads(c.Status(cri.StatusRequest(verbose=True)).info["oomScoreAdjRestricted"]) is restricted
    low = container_config("low", env.images.busybox, command=["sleep", "1000"])
    low.linux.resources.oom_score_adj = -500
    lid = c.create(pid, low, cfg)
    c.start(lid)
    with open("/proc/self/oom_score_adj") as f:
        ours = int(f.read())
    got = int(c.exec(lid, "cat", "/proc/self/oom_score_adj").stdout)
    assert got == (max(-500, ours) if restricted else -500)
    sandbox_spec = json.loads(c.pod_status(pid, verbose=True).info["info"])["runtimeSpec"]
    assert sandbox_spec["process"]["oomScoreAdj"] == (max(-998, ours) if restricted else -998)


def test_restrict_oom_score_adj_config(tmp_path, registry):
    with cri_env(tmp_path / "cri", registry, restrict_oom=True) as env:
        c = env.client
        assert json.loads(c.Status(cri.StatusRequest(verbose=True)).info["oomScoreAdjRestricted"]) is True
        cfg = pod_config("oom", host_network=True)
        pid = c.run_pod(cfg)
        with open("/proc/self/oom_score_adj") as f:
            ours = int(f.read())
        spec = json.loads(c.pod_status(pid, verbose=True).info["info"])["runtimeSpec"]
        assert spec["process"]["oomScoreAdj"] == max(-998, ours)


def test_container_events(env, pod):
    c = env.client
    seen: list[cri.ContainerEventResponse] = []
    call = c.runtime.GetContainerEvents(cri.GetEventsRequest())
    ready = threading.Event()

    def collect():
        ready.set()
        try:
            for ev in call:
                seen.append(ev)
        except grpc.RpcError:
            pass

    t = threading.Thread(target=collect, daemon=True)
    t.start()
    ready.wait()
    time.sleep(0.3)
    cid = run(env, pod, "evented", ["true"])
    c.wait_state(cid, cri.CONTAINER_EXITED)
    c.RemoveContainer(cri.RemoveContainerRequest(container_id=cid))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len([e for e in seen if e.container_id == cid]) < 4:
        time.sleep(0.05)
    call.cancel()
    t.join(5)
    mine = [e for e in seen if e.container_id == cid]
    assert [e.container_event_type for e in mine] == [cri.CONTAINER_CREATED_EVENT, cri.CONTAINER_STARTED_EVENT,
                                                      cri.CONTAINER_STOPPED_EVENT, cri.CONTAINER_DELETED_EVENT]
    assert all(e.pod_sandbox_status.id == pod[0] and e.created_at > 0 for e in mine)
    assert mine[2].containers_statuses and any(s.id == cid and s.state == cri.CONTAINER_EXITED
                                               for s in mine[2].containers_statuses)


def test_bad_input_is_refused_and_leaves_nothing(env, pod, tmp_path):
    c = env.client
    pid, cfg = pod
    ok = run(env, pod, "taken", ["sleep", "1000"])
    records = set(env.containerd_containers())
    plugin_root = env.daemon.root / "io.containerd.grpc.v1.cri" / "containers"
    dirs = set(os.listdir(plugin_root))

    def create(config, sandbox=pid):
        return rpc_error(c.create, sandbox, config, cfg)

    box = env.images.busybox
    code, details = create(container_config("x", box, command=["true"]), sandbox="f" * 64)
    assert code == grpc.StatusCode.NOT_FOUND
    code, details = create(container_config("taken", box, command=["true"]))
    assert code == grpc.StatusCode.ALREADY_EXISTS and f'reserved for "{ok}"' in details
    code, details = create(container_config("x", "not/here:1", command=["true"]))
    assert code == grpc.StatusCode.NOT_FOUND and "not/here:1" in details
    (tmp_path / "file").write_text("")
    code, details = create(container_config("x", box, command=["true"], mounts=[
        cri.Mount(container_path="/m", host_path=str(tmp_path / "file" / "sub"))]))
    assert code == grpc.StatusCode.UNKNOWN and "failed to stat" in details and "file/sub" in details
    bad_seccomp = container_config("x", box, command=["true"])
    bad_seccomp.linux.security_context.seccomp.profile_type = cri.SecurityProfile.Localhost
    bad_seccomp.linux.security_context.seccomp.localhost_ref = str(tmp_path / "nope.json")
    code, details = create(bad_seccomp)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "seccomp" in details
    privileged = container_config("x", box, command=["true"])
    privileged.linux.security_context.privileged = True
    code, details = create(privileged)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "privileged" in details
    missing_user = container_config("x", box, command=["true"])
    missing_user.linux.security_context.run_as_username = "nosuchuser"
    code, _ = create(missing_user)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    group_only = container_config("x", box, command=["true"])
    group_only.linux.security_context.run_as_group.value = 5
    code, _ = create(group_only)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, _ = create(cri.ContainerConfig(image=cri.ImageSpec(image=box)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    # sandboxes
    code, details = rpc_error(c.run_pod, cfg)                        # same name, attempt and uid
    assert code == grpc.StatusCode.ALREADY_EXISTS and f'reserved for "{pid}"' in details
    code, _ = rpc_error(c.run_pod, cri.PodSandboxConfig())
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, details = rpc_error(c.run_pod, pod_config("h", host_network=True), "no-such-handler")
    assert code == grpc.StatusCode.NOT_FOUND and "no-such-handler" in details
    code, _ = rpc_error(c.pod_status, "f" * 64)
    assert code == grpc.StatusCode.NOT_FOUND
    # a stopped sandbox takes no new containers
    c.StopPodSandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pid))
    assert c.status(ok).status.state == cri.CONTAINER_EXITED
    code, details = create(container_config("late", box, command=["true"]))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    # nothing half-made: no record, no directory, no snapshot
    assert set(env.containerd_containers()) == records
    assert set(os.listdir(plugin_root)) == dirs
    assert len(c.ListContainers(cri.ListContainersRequest()).containers) == 1


def test_namespaces_devices_capabilities_seccomp(env):
    c = env.client
    box = env.images.busybox
    # PID namespace shared with the pod: the pause process is visible; the host's is not
    pod_pid = pod_config("pidpod", host_network=True)
    pod_pid.linux.security_context.namespace_options.pid = cri.POD
    pid = c.run_pod(pod_pid)
    cc = container_config("ps", box, command=["sleep", "1000"])
    cc.linux.security_context.namespace_options.pid = cri.POD
    cid = c.create(pid, cc, pod_pid)
    c.start(cid)
    ps = c.exec(cid, "ps", "-o", "pid,args").stdout.decode()
    assert "/pause" in ps and "sleep 1000" in ps and "pycontainerd" not in ps
    # host PID and IPC: the host's processes and /dev/shm
    pod_host = pod_config("hostpid", host_network=True)
    pod_host.linux.security_context.namespace_options.pid = cri.NODE
    pod_host.linux.security_context.namespace_options.ipc = cri.NODE
    hid = c.run_pod(pod_host)
    hc = container_config("host", box, command=["sleep", "1000"])
    hc.linux.security_context.namespace_options.pid = cri.NODE
    hcid = c.create(hid, hc, pod_host)
    c.start(hcid)
    assert str(os.getpid()).encode() in c.exec(hcid, "ps", "-o", "pid").stdout
    marker = f"/dev/shm/pcd-cri-{os.getpid()}"
    with open(marker, "w") as f:
        f.write("host shm\n")
    try:
        assert c.exec(hcid, "cat", marker).stdout == b"host shm\n"
    finally:
        os.unlink(marker)
    # a device, capabilities dropped and added, the runtime's default seccomp profile
    dc = container_config("dev", box, command=["sleep", "1000"])
    dc.devices.append(cri.Device(container_path="/dev/mynull", host_path="/dev/null", permissions="rw"))
    dc.linux.security_context.capabilities.drop_capabilities.extend(["CHOWN"])
    dc.linux.security_context.capabilities.add_capabilities.extend(["SYS_TIME"])
    dc.linux.security_context.seccomp.profile_type = cri.SecurityProfile.RuntimeDefault
    did = c.create(hid, dc, pod_host)
    c.start(did)
    r = c.exec(did, "sh", "-c", "echo x > /dev/mynull && echo wrote; grep -E '^(CapBnd|Seccomp):' /proc/self/status")
    lines = dict(line.split(":\t") for line in r.stdout.decode().splitlines()[1:])
    caps = int(lines["CapBnd"], 16)
    assert r.stdout.startswith(b"wrote\n") and int(lines["Seccomp"]) == 2
    assert not caps & (1 << 0) and caps & (1 << 25)     # CAP_CHOWN gone, CAP_SYS_TIME there
    # privileged (in a privileged sandbox): every capability, no seccomp, may mount
    pod_priv = pod_config("priv", host_network=True, privileged=True)
    ppid = c.run_pod(pod_priv)
    pc = container_config("priv", box, command=["sleep", "1000"])
    pc.linux.security_context.privileged = True
    pcid = c.create(ppid, pc, pod_priv)
    c.start(pcid)
    r = c.exec(pcid, "sh", "-c", "mkdir -p /mnt/t && mount -t tmpfs none /mnt/t && echo mounted; "
                                 "grep Seccomp: /proc/self/status")
    assert r.stdout.decode().split("\n")[:2] == ["mounted", "Seccomp:\t0"], r


def test_oom_killed_reason(env, pod):
    c = env.client
    pid, cfg = pod
    cc = container_config("hog", env.images.busybox,
                          command=["sh", "-c", "a=$(head -c 300000000 /dev/zero | tr '\\0' x); echo survived"])
    cc.linux.resources.memory_limit_in_bytes = 24 << 20
    cid = c.create(pid, cc, cfg)
    c.start(cid)
    st = c.wait_state(cid, cri.CONTAINER_EXITED, timeout=60)
    assert st.state == cri.CONTAINER_EXITED and st.reason == "OOMKilled", (st.exit_code, st.reason)
    assert st.exit_code == 137


def test_runtime_handler_with_its_own_binary(tmp_path, registry):
    import shutil

    crun = shutil.which("crun")
    if crun is None:
        pytest.fail("crun is not installed: apt-get install crun (the project's install step does)")
    # Debian 12's crun refuses this host's hybrid cgroup layout whoever drives it (see
    # tests/interop/test_ctr_run.py): run it where the cgroup2 mount is out of sight
    wrapper = tmp_path / "crun-v1"
    wrapper.write_text("#!/bin/sh\n"
                       f"exec unshare -m sh -c 'umount -l /sys/fs/cgroup/unified 2>/dev/null; exec {crun} \"$@\"' "
                       "crun \"$@\"\n")
    wrapper.chmod(0o755)
    crun = str(wrapper)
    extra = (
        '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.crun]\n'
        'runtime_type = "io.containerd.runc.v2"\n'
        '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.crun.options]\n'
        f'BinaryName = "{crun}"\n'
        '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]\n'
        'runtime_type = "io.containerd.runc.v2"\n'
    )
    with cri_env(tmp_path / "cri", registry, extra=extra) as env:
        c = env.client
        assert {h.name for h in c.Status(cri.StatusRequest()).runtime_handlers} == {"", "crun", "runc"}
        c.pull(env.images.busybox)
        cfg = pod_config("crun-pod", host_network=True)
        pid = c.run_pod(cfg, handler="crun")
        assert c.pod_status(pid).status.runtime_handler == "crun"
        cid = c.create(pid, container_config("c", env.images.busybox, command=["sleep", "100"]), cfg)
        c.start(cid)
        assert c.exec(cid, "echo", "via crun").stdout == b"via crun\n"
        info = json.loads(c.status(cid, verbose=True).info["info"])
        assert info["runtimeName"] == "crun"
        bundles = env.daemon.state / "io.containerd.runtime.v2.task" / "k8s.io" / cid
        assert crun in (bundles / "options.json").read_text()   # the shim was told to run crun


def test_start_failure_is_recorded_as_start_error(env, pod):
    c = env.client
    pid, cfg = pod
    cid = c.create(pid, container_config("broken", env.images.busybox, command=["/no/such/binary"]), cfg)
    code, details = rpc_error(c.start, cid)
    assert code == grpc.StatusCode.UNKNOWN and "no/such/binary" in details and "internal error" not in details
    st = c.status(cid).status
    assert (st.state, st.reason, st.exit_code) == (cri.CONTAINER_EXITED, "StartError", 128)
    assert "no/such/binary" in st.message and st.finished_at > 0
    tasks = env.daemon.state / "io.containerd.runtime.v2.task" / "k8s.io"
    assert not (tasks / cid).exists()
    c.RemoveContainer(cri.RemoveContainerRequest(container_id=cid))
    assert cid not in env.containerd_containers()
