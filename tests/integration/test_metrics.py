"""Prometheus metrics scraped from a real daemon: RPC counts and latencies move with the calls
made, gauges follow a real pull and a real container (tasks by state: RUNNING, then gone),
and the endpoint is off by default, refused clearly when its port is taken."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pycontainerd.version import REVISION, VERSION

pytestmark = [pytest.mark.integration, pytest.mark.root]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> dict[tuple[str, frozenset], float]:
    r = httpx.get(f"http://127.0.0.1:{port}/v1/metrics", timeout=30)
    assert r.status_code == 200, r.text
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


def value(got, name, **labels) -> float:
    """The sample's value; 0 when the series is absent."""
    return got.get((name, frozenset(labels.items())), 0.0)


def rpc(got, service, method, code="OK", kind="unary", name="grpc_server_handled_total") -> float:
    return value(got, name, grpc_service=f"containerd.services.{service}", grpc_method=method, grpc_code=code,
                 grpc_type=kind)


def pyctr(daemon, *args, check=True):
    cmd = [sys.executable, "-m", "pycontainerd_cmd.ctr", "-a", daemon.address, "--connect-timeout", "10"]
    proc = subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"pyctr {args} failed: {proc.stderr}\n{daemon.log()[-3000:]}")
    return proc


def wait_until(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.1)
    return predicate()


@pytest.fixture
def metered(daemon_factory):
    """A daemon with ``[metrics]`` on a free port and the latency histogram on."""
    port = free_port()
    d = daemon_factory(f'[metrics]\naddress = "127.0.0.1:{port}"\ngrpc_histogram = true\n')

    def up():
        try:
            return httpx.get(f"http://127.0.0.1:{port}/v1/metrics", timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    assert wait_until(up), d.log()[-3000:]
    d.metrics_port = port
    return d


def test_metrics_follow_rpcs_a_pull_and_a_container(metered, busybox_image):
    d, port = metered, metered.metrics_port
    before = scrape(port)
    assert value(before, "pycontainerd_build_info", version=VERSION, revision=REVISION) == 1
    assert value(before, "process_resident_memory_bytes") > 0 and value(before, "process_open_fds") > 0
    usage_before = value(before, "pycontainerd_snapshotter_usage_bytes", snapshotter="overlayfs")
    # every served method starts at 0 for every code (go-grpc-prometheus's Register), CRI too
    zero = {"grpc_service": "containerd.services.tasks.v1.Tasks", "grpc_method": "Checkpoint",
            "grpc_type": "unary", "grpc_code": "DataLoss"}
    assert before[("grpc_server_handled_total", frozenset(zero.items()))] == 0
    cri = [v for (k, labels), v in before.items()
           if k == "grpc_server_handled_total" and dict(labels)["grpc_service"] == "runtime.v1.RuntimeService"]
    assert len(cri) > 17 and set(cri) == {0}  # no CRI call yet

    pyctr(d, "images", "pull", "--plain-http", busybox_image.oci.ref)
    missing = pyctr(d, "containers", "info", "ghost", check=False)
    assert missing.returncode != 0
    after_pull = scrape(port)
    assert value(after_pull, "pycontainerd_images", namespace="default") == 1
    assert value(after_pull, "pycontainerd_snapshots", namespace="default", snapshotter="overlayfs") >= 1
    assert value(after_pull, "pycontainerd_snapshotter_usage_bytes", snapshotter="overlayfs") > usage_before
    assert value(after_pull, "pycontainerd_namespaces") == 1
    assert rpc(after_pull, "images.v1.Images", "Create") - rpc(before, "images.v1.Images", "Create") == 1
    assert rpc(after_pull, "content.v1.Content", "Write", kind="bidi_stream") >= 1
    assert rpc(after_pull, "containers.v1.Containers", "Get", code="NotFound") == 1
    assert rpc(after_pull, "containers.v1.Containers", "Get") == 0

    try:
        pyctr(d, "run", "-d", busybox_image.oci.ref, "web", "sleep", "1000")
        running = scrape(port)
        assert value(running, "pycontainerd_tasks", namespace="default", state="RUNNING") == 1
        assert value(running, "pycontainerd_containers", namespace="default") == 1
        for method in ("Create", "Start"):
            handled = rpc(running, "tasks.v1.Tasks", method)
            assert handled == 1
            assert rpc(running, "tasks.v1.Tasks", method, name="grpc_server_handling_seconds_count") == handled
            assert rpc(running, "tasks.v1.Tasks", method, name="grpc_server_handling_seconds_sum") > 0
    finally:
        pyctr(d, "tasks", "kill", "-s", "KILL", "web", check=False)
        pyctr(d, "tasks", "rm", "-f", "web", check=False)
        pyctr(d, "containers", "rm", "web", check=False)
    gone = scrape(port)
    assert not any(name == "pycontainerd_tasks" for name, _ in gone)  # the series went away
    assert value(gone, "pycontainerd_containers", namespace="default") == 0
    assert rpc(gone, "tasks.v1.Tasks", "Delete") == 1
    # scrapes themselves are not RPCs, and counters only grow
    assert all(v >= before.get(k, 0) for k, v in gone.items() if k[0] == "grpc_server_handled_total")


def listening_tcp_sockets(pid: int) -> set[str]:
    """Inodes of the TCP sockets process ``pid`` listens on (``/proc``, state 0A = LISTEN)."""
    listening = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.read().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A":
                    listening.add(fields[9])
    mine = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue
        if target.startswith("socket:["):
            mine.add(target[len("socket:["):-1])
    return mine & listening


def test_metrics_and_debug_are_off_by_default(daemon, daemon_factory):
    assert "serving metrics" not in daemon.log() and "serving debug" not in daemon.log()
    # (the CRI streaming server may listen on its own port: compare with a daemon that has metrics)
    on = daemon_factory(f'[metrics]\naddress = "127.0.0.1:{free_port()}"\n')
    assert wait_until(lambda: "serving metrics" in on.log())
    assert len(listening_tcp_sockets(on.proc.pid)) == len(listening_tcp_sockets(daemon.proc.pid)) + 1


def test_taken_metrics_port_refuses_start_up(daemon_factory):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        d = daemon_factory(f'[metrics]\naddress = "127.0.0.1:{port}"\n', start=False)
        d.start(wait=False)
        assert d.proc.wait(30) == 1
    assert f'cannot listen for the metrics endpoint on "127.0.0.1:{port}"' in d.log()
    assert "address already in use" in d.log()
    assert "Traceback" not in d.log()
    assert not os.path.exists(d.address)  # the gRPC socket it had opened is gone again
