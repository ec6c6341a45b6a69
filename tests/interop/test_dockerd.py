"""Debian's Docker Engine (dockerd 20.10 + docker CLI, package ``docker.io``) on our daemon:
``dockerd --containerd <our socket>`` on temporary dirs, images from ``docker load`` of an
archive built here (umoci + skopeo, busybox-static), and the docker commands people use
(issue 14). One dockerd serves most of the module; the bridge network (in a network namespace
made here), ``--userns-remap`` and the comparison of error messages with dockerd on Debian's
containerd get their own. Everything is removed at the end, also when a test fails:
containers, dockerds and their cgroups and mounts, our daemon's shims and mounts, the netns.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from pycontainerd.testing import Daemon
from tests.support.containerd import Containerd
from pycontainerd.testing import force_cleanup, netns_pins
from tests.support.cri import create_test_netns, delete_test_netns
from tests.support.dockerd import DOCKER, Dockerd, build_busybox_archive, open_base
from tests.support.ptyrun import run_in_pty

pytestmark = [pytest.mark.interop, pytest.mark.root]

# checkpoint needs --experimental on 20.10; "norunc" is a runtime whose binary is missing
DOCKERD_ARGS = ["--experimental", "--live-restore", "--add-runtime", "norunc=no-runc"]


@pytest.fixture(scope="module")
def archive():
    if not os.path.exists(DOCKER):
        pytest.fail("Debian's docker.io is not installed (.ci/install installs it)", pytrace=False)
    work = open_base("pcd-dockerimg-")
    try:
        yield build_busybox_archive(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def pcd():
    d = Daemon(base=open_base("pcd-dockerd-"))
    pins = netns_pins()
    d.start()
    try:
        yield d
    finally:
        d.stop()
        leftovers = force_cleanup(d.base, pins)
        shutil.rmtree(d.base, ignore_errors=True)
        assert not [x for x in leftovers if x.startswith("mount")], leftovers


def _start(dockerd: Dockerd, archive: Path) -> Dockerd:
    dockerd.start()
    dockerd.docker("load", "-i", str(archive))
    return dockerd


@pytest.fixture(scope="module")
def dockerd(pcd, archive):
    d = Dockerd(open_base("dockerd-"), pcd.address, extra_args=list(DOCKERD_ARGS))
    try:
        yield _start(d, archive)
    finally:
        forced = d.cleanup()
        assert not forced, forced


@pytest.fixture(autouse=True)
def no_containers_left(request):
    """After each test: its containers are removed (the test's own cleanup, or here)."""
    yield
    if "dockerd" in request.fixturenames:
        request.getfixturevalue("dockerd").remove_containers()


def ctr_moby(pcd: Daemon, *args: str) -> list[str]:
    """What our daemon holds in dockerd's namespace, through Debian's ctr."""
    r = subprocess.run(["ctr", "--address", pcd.address, "--connect-timeout", "5s", "-n", "moby", *args, "-q"],
                       capture_output=True, text=True, check=True, timeout=30)
    return r.stdout.split()


def _eventually(fn, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_run_rm_output_and_exit_codes(dockerd, pcd):
    r = dockerd.docker("run", "--rm", "busybox", "echo", "hello")
    assert r.stdout == "hello\n"
    assert dockerd.docker("run", "--rm", "busybox", "sh", "-c", "exit 3", check=False).returncode == 3
    assert dockerd.docker("ps", "-aq").stdout.split() == []
    assert ctr_moby(pcd, "containers", "ls") == [] and ctr_moby(pcd, "tasks", "ls") == []


def test_memory_limit_oom_kill_exits_137(dockerd):
    r = dockerd.docker("run", "--name", "oom", "-m", "16m", "--memory-swap", "16m", "busybox", "sh", "-c",
                       "head -c 300m /dev/zero | tail", check=False)
    assert r.returncode == 137, r.stderr
    state = dockerd.inspect("oom")["State"]
    assert state["OOMKilled"] is True and state["ExitCode"] == 137
    dockerd.docker("rm", "oom")


def test_detached_container_top_stats_pause_exec_cp_logs_rm_f(dockerd, pcd, tmp_path):
    cid = dockerd.docker("run", "-d", "--name", "web", "busybox", "sh", "-c",
                         "echo to-out; echo to-err >&2; exec sleep 300").stdout.strip()
    info = dockerd.wait_for("web", lambda i: i["State"]["Running"])
    assert cid in ctr_moby(pcd, "tasks", "ls")
    top = dockerd.docker("top", "web").stdout
    assert "sleep 300" in top and str(info["State"]["Pid"]) in top
    stats = json.loads(dockerd.docker("stats", "--no-stream", "--format", "{{json .}}", "web").stdout)
    assert stats["Name"] == "web" and stats["PIDs"] == "1" and stats["MemUsage"].split()[0] != "0B", stats
    dockerd.docker("pause", "web")
    assert dockerd.inspect("web")["State"]["Status"] == "paused"
    dockerd.docker("unpause", "web")
    assert dockerd.inspect("web")["State"]["Status"] == "running"
    assert dockerd.docker("exec", "-i", "web", "sh", "-c", "cat; echo rc=$?", input="from stdin\n").stdout \
        == "from stdin\nrc=0\n"
    assert dockerd.docker("exec", "web", "sh", "-c", "exit 5", check=False).returncode == 5
    (tmp_path / "in.txt").write_text("copied in\n")
    dockerd.docker("cp", str(tmp_path / "in.txt"), "web:/tmp/in.txt")
    assert dockerd.docker("exec", "web", "cat", "/tmp/in.txt").stdout == "copied in\n"
    dockerd.docker("exec", "web", "sh", "-c", "echo made inside > /tmp/out.txt")
    dockerd.docker("cp", "web:/tmp/out.txt", str(tmp_path / "out.txt"))
    assert (tmp_path / "out.txt").read_text() == "made inside\n"
    logs = _eventually(lambda: _logs(dockerd, "web"))
    assert logs == ("to-out\n", "to-err\n")
    dockerd.docker("rm", "-f", "web")
    assert dockerd.docker("ps", "-aq").stdout.split() == []
    assert cid not in ctr_moby(pcd, "tasks", "ls") and cid not in ctr_moby(pcd, "containers", "ls")


def _logs(dockerd: Dockerd, name: str) -> tuple[str, str]:
    r = dockerd.docker("logs", name)
    assert r.stdout and r.stderr
    return r.stdout, r.stderr


def test_exec_it_gets_a_pty(dockerd):
    dockerd.docker("run", "-d", "--name", "ttyc", "busybox", "sleep", "300")
    # docker sizes the exec's pty after it started: give it a moment before asking
    rc, text = run_in_pty([DOCKER, "-H", dockerd.host, "exec", "-it", "ttyc", "sh", "-c", "tty; sleep 1; stty size"],
                          rows=33, cols=111)
    assert rc == 0, text
    assert re.search(r"^/dev/pts/\d+\s*$", text, re.M) and re.search(r"^33 111\s*$", text, re.M), text


def test_restart_policies_and_exec_into_a_restarted_container(dockerd):
    dockerd.docker("run", "-d", "--name", "flaky", "--restart", "on-failure:2", "busybox", "sh", "-c", "exit 1")
    info = dockerd.wait_for("flaky", lambda i: i["RestartCount"] == 2 and i["State"]["Status"] == "exited")
    assert info["State"]["ExitCode"] == 1

    dockerd.docker("run", "-d", "--name", "phoenix", "--restart", "always", "busybox", "sleep", "300")
    first = dockerd.wait_for("phoenix", lambda i: i["State"]["Running"])["State"]["Pid"]
    os.kill(first, signal.SIGKILL)  # dies behind docker's back: the policy brings it back
    again = dockerd.wait_for("phoenix", lambda i: i["RestartCount"] >= 1 and i["State"]["Running"]
                             and i["State"]["Pid"] not in (0, first))
    assert dockerd.docker("exec", "phoenix", "echo", "back").stdout == "back\n"
    dockerd.docker("restart", "-t", "1", "phoenix")
    third = dockerd.wait_for("phoenix", lambda i: i["State"]["Running"])["State"]["Pid"]
    assert third not in (first, again["State"]["Pid"])
    assert dockerd.docker("exec", "phoenix", "echo", "again").stdout == "again\n"


def test_health_checks(dockerd):
    dockerd.docker("run", "-d", "--name", "fine", "--health-cmd", "test -d /tmp", "--health-interval", "1s",
                   "busybox", "sleep", "300")
    dockerd.docker("run", "-d", "--name", "sick", "--health-cmd", "false", "--health-interval", "1s",
                   "--health-retries", "1", "busybox", "sleep", "300")
    dockerd.wait_for("fine", lambda i: i["State"]["Health"]["Status"] == "healthy")
    sick = dockerd.wait_for("sick", lambda i: i["State"]["Health"]["Status"] == "unhealthy")
    assert sick["State"]["Health"]["Log"][-1]["ExitCode"] == 1


def test_read_only_user_cap_drop_and_volumes(dockerd, tmp_path):
    ro = dockerd.docker("run", "--rm", "--read-only", "busybox", "touch", "/x", check=False)
    assert ro.returncode == 1 and "Read-only file system" in ro.stderr
    assert dockerd.docker("run", "--rm", "--user", "1000:1000", "busybox", "id").stdout.strip() \
        == "uid=1000 gid=1000 groups=1000"
    caps = dockerd.docker("run", "--rm", "--cap-drop", "ALL", "busybox", "grep", "CapEff", "/proc/self/status")
    assert caps.stdout.split() == ["CapEff:", "0000000000000000"]
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "from-host").write_text("host data\n")
    out = dockerd.docker("run", "--rm", "-v", f"{vol}:/data", "busybox", "sh", "-c",
                         "cat /data/from-host; echo container data > /data/from-container").stdout
    assert out == "host data\n" and (vol / "from-container").read_text() == "container data\n"


def test_events(dockerd):
    since = time.time()
    dockerd.docker("run", "--rm", "--name", "evt", "busybox", "true")
    until = time.time() + 1
    r = dockerd.docker("events", "--since", f"{since:.3f}", "--until", f"{until:.3f}", "--filter", "container=evt",
                       "--format", "{{.Action}}", timeout=30)
    actions = r.stdout.split()
    wanted = ["create", "start", "die", "destroy"]
    assert [a for a in actions if a in wanted] == wanted, actions


def test_our_daemon_restarts_under_running_containers(dockerd, pcd):
    dockerd.docker("run", "-d", "--name", "survivor", "busybox", "sleep", "300")
    pid = dockerd.wait_for("survivor", lambda i: i["State"]["Running"])["State"]["Pid"]
    pcd.kill()  # SIGKILL: no goodbye
    pcd.start()
    os.kill(pid, 0)  # the container never noticed
    out = _eventually(lambda: _exec_ok(dockerd, "survivor"), timeout=60)
    assert out == "still here\n"
    dockerd.docker("stop", "-t", "1", "survivor")
    state = dockerd.inspect("survivor")["State"]
    assert state["Running"] is False and state["ExitCode"] == 137


def _exec_ok(dockerd: Dockerd, name: str) -> str:
    r = dockerd.docker("exec", name, "echo", "still here", check=False)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_dockerd_restart_with_live_restore_keeps_containers(dockerd, archive):
    dockerd.docker("run", "-d", "--name", "kept", "busybox", "sleep", "300")
    pid = dockerd.wait_for("kept", lambda i: i["State"]["Running"])["State"]["Pid"]
    dockerd.stop()
    os.kill(pid, 0)  # still running while dockerd is away
    dockerd.start()
    info = dockerd.inspect("kept")
    assert info["State"]["Running"] is True and info["State"]["Pid"] == pid
    assert dockerd.docker("exec", "kept", "echo", "picked up").stdout == "picked up\n"
    dockerd.docker("rm", "-f", "kept")


def test_bridge_network_and_a_published_port_in_a_netns(pcd, archive):
    netns = create_test_netns()
    d = Dockerd(open_base("dockerd-net-"), pcd.address, netns=netns)
    try:
        _start(d, archive)
        d.docker("run", "-d", "--name", "httpd", "-p", "8080:80", "busybox", "httpd", "-f", "-p", "80", "-h", "/www")
        info = d.wait_for("httpd", lambda i: i["State"]["Running"])
        assert info["NetworkSettings"]["IPAddress"].startswith("172.31.251.")

        def fetch() -> str:
            r = subprocess.run(["nsenter", f"--net={netns}", "curl", "-sS", "--max-time", "2", "http://127.0.0.1:8080/"],
                               capture_output=True, text=True, timeout=20)
            assert r.returncode == 0, r.stderr
            return r.stdout

        assert _eventually(fetch) == "hello from busybox httpd\n"
        # and from a second container on the bridge, by the first one's address
        other = d.docker("run", "--rm", "busybox", "wget", "-q", "-O", "-",
                         f"http://{info['NetworkSettings']['IPAddress']}/").stdout
        assert other == "hello from busybox httpd\n"
    finally:
        forced = d.cleanup()
        delete_test_netns(netns)
    assert not forced, forced


def test_userns_remap_default(pcd, archive):
    d = Dockerd(open_base("dockerd-userns-"), pcd.address, extra_args=["--userns-remap=default"])
    try:
        _start(d, archive)
        uid_map = d.docker("run", "--rm", "busybox", "cat", "/proc/self/uid_map").stdout.split()
        inside, outside, size = (int(x) for x in uid_map[:3])
        assert inside == 0 and outside > 0 and size > 0, uid_map
        d.docker("run", "-d", "--name", "remapped", "busybox", "sleep", "300")
        pid = d.wait_for("remapped", lambda i: i["State"]["Running"])["State"]["Pid"]
        assert os.stat(f"/proc/{pid}").st_uid == outside  # root inside is not root outside
        assert d.docker("exec", "remapped", "id", "-u").stdout == "0\n"
    finally:
        forced = d.cleanup()
    assert not forced, forced


@pytest.fixture(scope="module")
def dockerd_on_containerd(archive):
    c = Containerd(open_base("ctrd-dockerd-"))
    d = Dockerd(open_base("dockerd-ctrd-"), c.address, extra_args=list(DOCKERD_ARGS))
    try:
        c.start()
        yield _start(d, archive)
    finally:
        d.cleanup()
        c.stop()
        shutil.rmtree(c.base, ignore_errors=True)


def _normalized(text: str, daemon_base: Path) -> str:
    text = text.replace(str(daemon_base / "state"), "<state>")
    return re.sub(r"\b[0-9a-f]{64}\b", "<id>", text)


def test_bad_input_reads_as_on_containerd(dockerd, pcd, dockerd_on_containerd):
    """A checkpoint without CRIU and a runtime whose binary is missing: the same exit
    status and the same message from dockerd on both daemons (paths and ids aside)."""
    out = {}
    for name, d, base in (("ours", dockerd, pcd.base), ("containerd", dockerd_on_containerd,
                                                          Path(dockerd_on_containerd.containerd).parent)):
        d.docker("run", "-d", "--name", "ck", "busybox", "sleep", "300")
        ck = d.docker("checkpoint", "create", "ck", "ck1", check=False)
        missing = d.docker("run", "--rm", "--runtime", "norunc", "busybox", "true", check=False)
        out[name] = [(ck.returncode, _normalized(ck.stderr, base)),
                     (missing.returncode, _normalized(missing.stderr.splitlines()[0], base))]
        assert d.inspect("ck")["State"]["Running"] is True  # the failed checkpoint left it alone
        d.remove_containers()
    assert out["ours"] == out["containerd"]
    (ck_rc, ck_err), (run_rc, run_err) = out["ours"]
    assert ck_rc == 1 and 'CRIU version check failed: exec: "criu": executable file not found in $PATH' in ck_err
    assert run_rc == 127 and 'exec: "no-runc": executable file not found in $PATH' in run_err
