"""Load, bounded (issue 9): 10 clients listing, getting and subscribed to events while 6
containers start and stop (``bench/load.py``'s ``run_load``, which the long version runs
with 50 clients against ours and containerd). No RPC fails, every subscriber receives
every ``/containers/create``, ``/tasks/start``, ``/tasks/exit`` and ``/containers/delete``
of the driver's containers, and afterwards the daemon's fds, the mounts under its dirs
and its shims are back to what they were before. No timing thresholds."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pycontainerd.admin.check import mount_points, shim_processes
from tests.support.checks import settled_check

pytestmark = [pytest.mark.reliability, pytest.mark.integration, pytest.mark.root]

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load_module():
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))  # bench/load.py imports bench/harness.py as "harness"
    spec = importlib.util.spec_from_file_location("pcd_bench_load", BENCH / "load.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def fd_targets(pid: int) -> list[str]:
    out = []
    for fd in sorted(os.listdir(f"/proc/{pid}/fd"), key=int):
        try:
            out.append(f"{fd}->{os.readlink(f'/proc/{pid}/fd/{fd}')}")
        except OSError:
            pass
    return out


def test_concurrent_clients_lose_nothing(daemon, ctr_bin, busybox_image):
    load = _load_module()
    ref = busybox_image.oci.ref
    pulled = subprocess.run([ctr_bin, "--address", daemon.address, "images", "pull", "--plain-http", ref],
                            capture_output=True, text=True, timeout=120, check=False)
    assert pulled.returncode == 0, pulled.stderr
    # one container first: what the daemon keeps open after its first task (the shim
    # zygote's channel, pools) is part of the baseline, as in test_soak
    warm = subprocess.run([ctr_bin, "--address", daemon.address, "run", "--rm", ref, "load-warm", "true"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert warm.returncode == 0, warm.stderr
    pid = daemon.proc.pid
    base_fds = fds(pid)
    base_targets = fd_targets(pid)
    base_mounts = [mp for mp, _ in mount_points() if mp.startswith(str(daemon.base) + "/")]

    res = asyncio.run(load.run_load(daemon.address, ref, clients=10, containers=6, parallel=2))

    assert res.errors == []
    assert res.lost == {}  # subscriber -> events it missed
    assert len(res.cycle_times) == 6
    assert all(res.latencies[kind] for kind in load.KINDS)  # every kind of read was exercised
    # the 11 connections are closed: their fds go away a moment later
    for _ in range(100):
        if fds(pid) <= base_fds:
            break
        time.sleep(0.05)
    assert fds(pid) <= base_fds, (base_targets, fd_targets(pid))
    assert [mp for mp, _ in mount_points() if mp.startswith(str(daemon.base) + "/")] == base_mounts
    assert shim_processes(daemon.state) == []
    report = settled_check(daemon)  # what the deletes released is swept a moment later
    assert report.ok, [p.line() for p in report.problems]
