"""kill -9 of a shim under a running daemon (issue 9): the task is reported exited —
``/tasks/exit`` with exit status 137 (containerd's ``TaskExit`` has no field for a reason;
the daemon logs it, with the container's id) — the container's processes are gone, its
rootfs is unmounted, its bundle removed, and the consistency checker finds nothing. The
same through the task manager alone is in ``tests/integration/test_shim_runc.py``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from pycontainerd.admin.check import check, mount_points, shim_processes
from tests.reliability.harness import FaultRunner
from tests.support.checks import settled_check

pytestmark = [pytest.mark.reliability, pytest.mark.integration, pytest.mark.root]


def _wait_for(predicate, what: str, attempts: int = 200):
    for _ in range(attempts):
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


@pytest.fixture
def runner(daemon, ctr_bin, busybox_image):
    r = FaultRunner(daemon, ctr_bin, busybox_image.oci.ref, busybox_image.oci.ref, seed=0)
    yield r
    r.teardown()  # whatever the test left running


def test_killed_shim_reports_exit_137_and_cleans_up(daemon, runner, busybox_image):
    runner.ctr("images", "pull", "--plain-http", busybox_image.oci.ref)
    runner.ctr("run", "-d", busybox_image.oci.ref, "victim", "sleep", "100000")
    events = subprocess.Popen(runner.ctr_argv("events"), stdout=subprocess.PIPE, text=True)
    try:
        pid = int(runner.tasks()["victim"][0])
        (shim,) = [s for s in shim_processes(daemon.state) if s.id == "victim"]
        bundle = daemon.state / "io.containerd.runtime.v2.task" / "default" / "victim"
        assert str(bundle / "rootfs") in [mp for mp, _ in mount_points()]
        runner.ctr("version")  # the events stream is set up before the kill
        os.kill(shim.pid, signal.SIGKILL)
        _wait_for(lambda: "victim" not in runner.tasks(), "the task to go away")
        _wait_for(lambda: not os.path.exists(f"/proc/{pid}"), "the container's process to die")
    finally:
        events.terminate()
        out, _ = events.communicate(timeout=10)
    exits = [line for line in out.splitlines() if "/tasks/exit" in line]
    assert len(exits) == 1, out
    payload = json.loads(exits[0].split("/tasks/exit", 1)[1].strip())
    assert payload["container_id"] == "victim" and payload["exit_status"] == 137 and payload["pid"] == pid
    assert any("/tasks/delete" in line and "victim" in line for line in out.splitlines()), out
    assert "shim disconnected" in daemon.log() and "victim" in daemon.log()
    assert not bundle.exists()
    assert not [mp for mp, _ in mount_points() if mp.startswith(str(daemon.base) + "/")]
    report = check(daemon.root, daemon.state)
    assert report.ok, [p.line() for p in report.problems]
    # the container record stays (as in containerd); a new task can be started from it
    runner.ctr("tasks", "start", "-d", "victim")
    assert runner.tasks()["victim"][1] == "RUNNING"
    runner.ctr("tasks", "rm", "-f", "victim")
    runner.ctr("containers", "rm", "victim")
    report = settled_check(daemon)  # the delete's collection runs a moment later
    assert report.ok, [p.line() for p in report.problems]
