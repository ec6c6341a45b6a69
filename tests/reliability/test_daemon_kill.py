"""kill -9 of the daemon during pull, unpack, container create/start/delete and garbage
collection: after each restart the consistency checker finds nothing wrong and the
container that was running keeps running (issue 9). Seeded: the seed is printed, and
``PYCONTAINERD_FAULT_SEED=<seed>`` replays a run. ``bench/faults.py`` is the long mode."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pycontainerd.admin.check import check, mount_points
from tests.reliability.harness import PHASES, FaultRunner, seed_from_env
from tests.support.checks import settled_check

pytestmark = [pytest.mark.reliability, pytest.mark.integration, pytest.mark.root]


def test_kill_daemon_at_random_points_keeps_state_consistent(daemon, ctr_bin, busybox_image, layered_image):
    seed = seed_from_env()
    print(f"fault seed {seed} (replay: PYCONTAINERD_FAULT_SEED={seed})")
    runner = FaultRunner(daemon, ctr_bin, busybox_image.oci.ref, layered_image.ref, seed)
    try:
        summary = runner.run(iterations=len(PHASES))
        assert summary.faults == dict.fromkeys(PHASES, 1)
        assert summary.problems == 0
    finally:
        runner.teardown()
    # everything removed: the checker sees no task, no shim, no mount left
    report = settled_check(daemon)  # what the deletes released is swept a moment later
    assert report.ok, [p.line() for p in report.problems]
    assert report.checked.get("shims", 0) == 0 and report.checked.get("mounts", 0) == 0


def test_checker_cli_on_a_live_daemon(daemon, ctr_bin, busybox_image):
    """``pyctr admin check`` on a running daemon with a running container: exit 0, and
    the container's rootfs mount and shim are counted, not reported."""
    runner = FaultRunner(daemon, ctr_bin, busybox_image.oci.ref, busybox_image.oci.ref, seed=0)
    runner.ctr("images", "pull", "--plain-http", busybox_image.oci.ref)
    runner.ctr("run", "-d", busybox_image.oci.ref, "live", "sleep", "100000")
    try:
        p = subprocess.run([sys.executable, "-m", "pycontainerd_cmd.ctr", "admin", "check",
                            "--root", str(daemon.root), "--state", str(daemon.state)],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stdout + p.stderr
        assert p.stdout.startswith("consistent (daemon running;"), p.stdout
        assert "1 shims" in p.stdout and "1 mounts" in p.stdout, p.stdout
    finally:
        runner.ctr("tasks", "rm", "-f", "live", check=False)
        runner.ctr("containers", "rm", "live", check=False)


def test_temporary_mount_of_a_killed_daemon_is_removed_on_restart(daemon):
    """A daemon killed while a layer was mounted on a temporary directory (an apply onto
    non-overlay mounts, a compare) leaves the mount; the next start removes it, as
    containerd's ``mount.CleanupTempMounts`` does. A tmpfs stands in for that mount."""
    leftover = daemon.state / "io.containerd.differ.v1.walking" / "mount-leftover"
    leftover.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "pcd-leftover", str(leftover)], check=True)
    try:
        daemon.kill()
        (problem,) = check(daemon.root, daemon.state).problems
        assert problem.kind == "mount" and problem.id == str(leftover)
        daemon.start()
        assert str(leftover) not in [mp for mp, _ in mount_points()] and not leftover.exists()
        assert check(daemon.root, daemon.state).ok
    finally:
        if str(leftover) in [mp for mp, _ in mount_points()]:
            subprocess.run(["umount", str(leftover)])
