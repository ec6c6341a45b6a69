"""Soak, bounded (issue 9): 30 × ``ctr run --rm busybox true`` against a real daemon; every
cycle succeeds, and afterwards the daemon's open fds, the mounts under its dirs and its
shims are back to what they were after the first run. ``bench/soak.py`` is the long
version (1,000 cycles, memory too, side by side with containerd). No timing thresholds:
the fd count is polled until it settles (a closed stream's fd goes away a moment after
``ctr`` returns) and then compared."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from pycontainerd.admin.check import mount_points, shim_processes
from tests.support.checks import settled_check

pytestmark = [pytest.mark.reliability, pytest.mark.integration, pytest.mark.root]

CYCLES = int(os.environ.get("PYCONTAINERD_SOAK_CYCLES", "30"))


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def mounts_under(base) -> list[str]:
    return [mp for mp, _ in mount_points() if mp.startswith(str(base) + "/")]


def settled(read, baseline: int, attempts: int = 100) -> int:
    """``read()`` once it is back at or below ``baseline`` (or its last value)."""
    value = read()
    for _ in range(attempts):
        if value <= baseline:
            break
        time.sleep(0.05)
        value = read()
    return value


def test_run_rm_cycles_leak_nothing(daemon, ctr_bin, busybox_image):
    ref = busybox_image.oci.ref

    def ctr(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([ctr_bin, "--address", daemon.address, *args], capture_output=True, text=True,
                              timeout=120, stdin=subprocess.DEVNULL, check=False)

    assert ctr("images", "pull", "--plain-http", ref).returncode == 0
    first = ctr("run", "--rm", ref, "soak-warm", "true")  # the first run warms pools and the zygote
    assert first.returncode == 0, first.stderr
    pid = daemon.proc.pid
    base_fds = settled(lambda: fds(pid), 0, attempts=10)
    base_mounts = mounts_under(daemon.base)
    failures = []
    for i in range(CYCLES):
        p = ctr("run", "--rm", ref, f"soak-{i}", "true")
        if p.returncode != 0:
            failures.append(p.stderr)
    assert failures == []
    assert settled(lambda: fds(pid), base_fds) <= base_fds, sorted(os.listdir(f"/proc/{pid}/fd"))
    assert mounts_under(daemon.base) == base_mounts
    assert shim_processes(daemon.state) == []
    assert ctr("containers", "ls", "-q").stdout.split() == []
    assert ctr("snapshots", "ls").stdout.strip().count("\n") == 1  # header + the image's one layer
    report = settled_check(daemon)  # what the deletes released is swept a moment later
    assert report.ok, [p.line() for p in report.problems]
