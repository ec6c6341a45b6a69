"""The CRI plugin calls the daemon's services in-process (issue 16): while it serves a pod,
driven by Kubernetes' own crictl, the daemon holds no connection to its own socket.

How it is seen, from the kernel's side and not from our code: the daemon's socket file
descriptors (``/proc/<pid>/fd`` → ``socket:[inode]``) and every unix stream socket of its
network namespace with its peer (``ss -x``, run in that namespace: the kernel makes a
connection's accepted end in the namespace of the process that connected). An accepted end on the
daemon's socket path (``<address>`` or ``<address>.ttrpc``) whose peer is one of the daemon's
own descriptors is a connection of the daemon to itself. The same check run on this test
process, after it opened a gRPC channel to the daemon, must find that channel: it proves the
check sees a client connection when there is one.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import grpc
import pytest

from tests.support.crictl import crictl, crictl_json, wait_for
from tests.support.critest import cri_node

pytestmark = [pytest.mark.root, pytest.mark.interop]

BUSYBOX = "registry.k8s.io/e2e-test-images/busybox:1.29-2"


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    with cri_node(tmp_path_factory.mktemp("inproc") / "node", "ours") as n:
        yield n


def socket_inodes(pid: int) -> set[int]:
    """Inodes of the unix (and other) sockets open in process ``pid``."""
    out = set()
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            out.add(int(target[len("socket:["):-1]))
    return out


def unix_streams(pid: int) -> list[tuple[str, int, int]]:
    """``(local path or "*", inode, peer inode)`` of each connected unix stream socket of the
    network namespace of process ``pid``, as ``ss`` reads them from the kernel."""
    argv = ["nsenter", f"--net=/proc/{pid}/ns/net", "ss", "-x", "-n", "-H", "state", "established"]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        # Netid Recv-Q Send-Q Local-Address Port Peer-Address Port (no State column: filtered)
        cols = line.split()
        if len(cols) < 7 or cols[0] != "u_str":
            continue
        rows.append((cols[3], int(cols[4]), int(cols[6])))
    return rows


def connections_to_own_socket(pid: int, address: str) -> list[tuple[int, int]]:
    """``(client inode, server inode)`` of every connection from process ``pid`` to the
    daemon's socket ``address`` (or its ttrpc twin)."""
    mine = socket_inodes(pid)
    paths = {address, f"{address}.ttrpc"}
    return [(peer, inode) for path, inode, peer in unix_streams(pid) if path in paths and peer in mine]


def daemon_pid(node) -> int:
    pid = node.daemon.proc.pid
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        cmdline = f.read().split(b"\0")
    assert any(b"pycontainerd" in part for part in cmdline), cmdline   # nsenter exec'd the daemon itself
    return pid


def test_the_check_sees_a_client_connection(node):
    """A gRPC channel from this process to the daemon is found by the same check."""
    with grpc.insecure_channel(f"unix:{node.address}") as ch:
        grpc.channel_ready_future(ch).result(timeout=30)
        found = connections_to_own_socket(os.getpid(), node.address)
        assert found, "the check did not see this test's own connection to the daemon"
    assert connections_to_own_socket(daemon_pid(node), node.address) == []


def test_serving_a_pod_holds_no_connection_to_its_own_socket(node, tmp_path):
    pid = daemon_pid(node)
    name = f"inproc-{uuid.uuid4().hex[:6]}"
    logs = tmp_path / "logs"
    logs.mkdir()
    pod_cfg = tmp_path / "pod.json"
    pod_cfg.write_text(json.dumps({"metadata": {"name": name, "namespace": "inproc", "uid": uuid.uuid4().hex},
                                   "hostname": name, "log_directory": str(logs), "linux": {}}))
    ctr_cfg = tmp_path / "ctr.json"
    ctr_cfg.write_text(json.dumps({"metadata": {"name": "sleeper"}, "image": {"image": BUSYBOX},
                                   "command": ["sh", "-c", "echo up; exec sleep 600"], "log_path": "sleeper.log"}))
    short_cfg = tmp_path / "short.json"
    short_cfg.write_text(json.dumps({"metadata": {"name": "short"}, "image": {"image": BUSYBOX},
                                     "command": ["sh", "-c", "exit 3"], "log_path": "short.log"}))

    crictl(node, "pull", BUSYBOX)
    pod_id = crictl(node, "runp", str(pod_cfg)).stdout.strip()
    try:
        cid = crictl(node, "create", pod_id, str(ctr_cfg), str(pod_cfg)).stdout.strip()
        crictl(node, "start", cid)
        short = crictl(node, "create", pod_id, str(short_cfg), str(pod_cfg)).stdout.strip()
        crictl(node, "start", short)
        # the exit comes from the event exchange: the short one ends EXITED with its code
        done = wait_for(lambda: (s := crictl_json(node, "inspect", short)["status"])["state"] == "CONTAINER_EXITED"
                        and s, what="the short container's exit")
        assert done["exitCode"] == 3 and done["reason"] == "Error", done
        assert crictl(node, "exec", "-s", cid, "echo", "in-pod").stdout.strip() == "in-pod"
        assert crictl_json(node, "inspect", cid)["status"]["state"] == "CONTAINER_RUNNING"
        crictl(node, "stats", "--id", cid)
        assert connections_to_own_socket(pid, node.address) == []
        crictl(node, "stop", cid)
        assert crictl_json(node, "inspect", cid)["status"]["state"] == "CONTAINER_EXITED"
        assert connections_to_own_socket(pid, node.address) == []
    finally:
        crictl(node, "stopp", pod_id, check=False)
        crictl(node, "rmp", pod_id, check=False)
