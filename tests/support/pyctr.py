"""Support for the ``pyctr`` suites: the installed ``pyctr`` run against a test daemon, the
busybox image pulled into it, and the per-test leak check (:func:`no_leftovers`, autouse
in every module that imports it)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from pycontainerd.testing import mounts_under


def pyctr(daemon, *args, check=True, ns=None, timeout=120, env=None, stdin=subprocess.DEVNULL):
    """Run ``python -m pycontainerd_cmd.ctr -a <daemon> ARGS`` (the installed ``pyctr``)."""
    cmd = [sys.executable, "-m", "pycontainerd_cmd.ctr", "-a", daemon.address, "--connect-timeout", "10"]
    if ns:
        cmd += ["-n", ns]
    proc = subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True, timeout=timeout,
                          stdin=stdin, env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"pyctr {' '.join(map(str, args))} failed ({proc.returncode}):\n"
                             f"stdout: {proc.stdout}\nstderr: {proc.stderr}\n{daemon.log()[-3000:]}")
    return proc


def wait_for(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


@pytest.fixture
def image(daemon, busybox_image):
    pyctr(daemon, "images", "pull", "--plain-http", busybox_image.oci.ref)
    return busybox_image.oci.ref


FIFO_ROOT = "/run/pycontainerd/fifo"


def fifo_dirs() -> set[str]:
    return set(os.listdir(FIFO_ROOT)) if os.path.isdir(FIFO_ROOT) else set()


@pytest.fixture(autouse=True)
def no_leftovers(request):
    """Autouse where imported: after the test, its tasks and containers are removed through
    pyctr and none of its bundles, mounts or fifos may be left (the daemon fixture then
    removes whatever is, :func:`pycontainerd.testing.force_cleanup`)."""
    fifos_before = fifo_dirs()
    # set the daemon up first, so that it is torn down after this check
    d = request.getfixturevalue("daemon") if "daemon" in request.fixturenames else None
    yield
    if d is None or d.proc is None:
        return
    for task in pyctr(d, "tasks", "ls", "-q", check=False).stdout.split():
        pyctr(d, "tasks", "rm", "-f", task, check=False)
    for c in pyctr(d, "containers", "ls", "-q", check=False).stdout.split():
        pyctr(d, "containers", "rm", c, check=False)
    bundles = d.state / "io.containerd.runtime.v2.task" / "default"
    assert not bundles.exists() or not os.listdir(bundles), os.listdir(bundles)
    leaked = mounts_under(str(d.base))
    assert not leaked, leaked
    assert fifo_dirs() <= fifos_before, "the client left fifos behind"
