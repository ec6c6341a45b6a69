"""The CRI across a daemon restart (containerd #9080, PR #4656): SIGTERM stops the daemon
gracefully and the containers keep running; a container that exited while the daemon was
down is EXITED afterwards with its own exit code, reason and finish time, and
ContainerStatus gives the same values after every further restart; 30 running containers
are all RUNNING, same pids, once the daemon is back. Checked with our client and crictl."""

from __future__ import annotations

import json
import os
import signal
import time
from datetime import timezone

import pytest

from pycontainerd.api.cri.runtime.v1 import api_pb2 as cri
from pycontainerd.cri.logs import timestamp
from tests.support.crictl import crictl
from pycontainerd.testing import process_alive
from tests.support.cri import CRIClient, container_config, cri_env, pod_config

pytestmark = [pytest.mark.integration, pytest.mark.root]


@pytest.fixture
def env(tmp_path, registry):
    with cri_env(tmp_path / "cri", registry) as e:
        e.client.pull(e.images.busybox)
        yield e




def _status_values(env, cid: str) -> tuple:
    st = env.client.status(cid).status
    return (st.state, st.exit_code, st.reason, st.message, st.created_at, st.started_at, st.finished_at)


def _restart(env) -> None:
    """SIGTERM, which must end the daemon cleanly, then start it on the same root and state."""
    env.client.close()
    assert env.daemon.stop() == 0
    env.daemon.start()
    env.client = CRIClient(env.daemon.address)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "crash"])
def test_exit_while_the_daemon_is_down_keeps_its_status(env, tmp_path, stop):
    c = env.client
    gate = tmp_path / "gate"
    gate.mkdir()
    cfg = pod_config("down", host_network=True, log_dir=str(env.log_dir / "down"))
    pid = c.run_pod(cfg)

    def start(name: str, script: str) -> str:
        cid = c.create(pid, container_config(name, env.images.busybox, command=["/bin/busybox", "sh", "-c", script],
                                             mounts=[cri.Mount(container_path="/gate", host_path=str(gate))]), cfg)
        c.start(cid)
        return cid

    waiter = start("waiter", "while [ ! -e /gate/go ]; do sleep 0.05; done; exit 7")
    early = start("early", "exit 3")
    runner = start("runner", "trap 'exit 0' TERM; while :; do sleep 1; done")
    assert c.wait_state(early, cri.CONTAINER_EXITED).exit_code == 3
    early_before = _status_values(env, early)
    waiter_pid, runner_pid = env.client.pid(waiter), env.client.pid(runner)

    c.close()
    assert env.daemon.stop(stop) == (0 if stop == signal.SIGTERM else -stop)  # SIGTERM: a clean exit
    assert process_alive(waiter_pid) and process_alive(runner_pid)  # the containers did not go with it
    (gate / "go").touch()
    deadline = time.monotonic() + 30
    while process_alive(waiter_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not process_alive(waiter_pid)
    exited_by = time.time_ns()
    env.daemon.start()
    env.client = c = CRIClient(env.daemon.address)

    st = c.wait_state(waiter, cri.CONTAINER_EXITED, timeout=30)
    assert (st.state, st.exit_code, st.reason) == (cri.CONTAINER_EXITED, 7, "Error")
    assert st.started_at < st.finished_at <= exited_by  # when it exited, not when we noticed
    assert _status_values(env, early) == early_before
    assert c.status(runner).status.state == cri.CONTAINER_RUNNING and env.client.pid(runner) == runner_pid

    waiter_after = _status_values(env, waiter)
    _restart(env)
    assert _status_values(env, waiter) == waiter_after
    assert _status_values(env, early) == early_before
    shown = json.loads(crictl(env, "inspect", "-o", "json", waiter).stdout)["status"]
    assert (shown["state"], shown["exitCode"], shown["reason"]) == ("CONTAINER_EXITED", 7, "Error")
    assert shown["finishedAt"] == timestamp(waiter_after[6], timezone.utc)


def test_restart_with_30_running_containers(env):
    c = env.client
    cfg = pod_config("many", host_network=True, log_dir=str(env.log_dir / "many"))
    pid = c.run_pod(cfg)
    cids = []
    for i in range(30):
        cid = c.create(pid, container_config(f"c{i}", env.images.busybox,
                                             command=["/bin/busybox", "sleep", "100000"]), cfg)
        c.start(cid)
        cids.append(cid)
    pids = {cid: env.client.pid(cid) for cid in cids}
    _restart(env)
    running = crictl(env, "ps", "-q", "--state", "running", "--pod", pid).stdout.split()
    assert sorted(running) == sorted(cids)
    assert {cid: env.client.pid(cid) for cid in cids} == pids
    assert all(process_alive(p) for p in pids.values())
    assert env.client.exec(cids[-1], "/bin/busybox", "echo", "ok").stdout == b"ok\n"
    assert os.path.exists(env.daemon.address)
