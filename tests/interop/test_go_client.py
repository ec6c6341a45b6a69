"""containerd's own Go client (``github.com/containerd/containerd`` v1.7, what dockerd,
nerdctl and BuildKit use) against our daemon and, side by side, Debian's containerd: the
program is ``tests/support/go/ctrclient`` built from the Go module proxy (issue 14).

Each scenario is one run of the program against one daemon; it prints JSON, and the same
scenario against containerd must print the same (or, for error texts, the same words).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from pycontainerd.testing import Daemon
from tests.support.containerd import Containerd
from pycontainerd.testing import mounts_under
from tests.support.dockerd import open_base
from tests.support.gobuild import GoBuildError, go_program

pytestmark = [pytest.mark.interop, pytest.mark.root]

HOST_ID = 231072  # the remapped root of the userns scenario


@pytest.fixture(scope="module")
def ctrclient() -> str:
    try:
        return go_program("ctrclient")
    except GoBuildError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="module")
def ours():
    d = Daemon(base=open_base("pcd-go-"))
    d.start()
    try:
        yield d
    finally:
        d.stop()
        leaked = mounts_under(str(d.base))
        for mp in reversed(leaked):
            subprocess.run(["umount", "-l", mp], capture_output=True)
        shutil.rmtree(d.base, ignore_errors=True)
        assert not leaked, leaked


@pytest.fixture(scope="module")
def theirs():
    c = Containerd(open_base("ctrd-go-")).start()
    try:
        yield c
    finally:
        c.stop()
        shutil.rmtree(c.base, ignore_errors=True)


@pytest.fixture(scope="module")
def run(ctrclient, busybox_image):
    def run(daemon, scenario: str, *flags: str) -> dict:
        r = subprocess.run([ctrclient, "-address", daemon.address, "-ref", busybox_image.ref, *flags, scenario],
                           capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, f"{scenario} on {daemon.address}: {r.stderr}"
        return json.loads(r.stdout)

    return run


@pytest.fixture
def both(ours, theirs):
    return {"pycontainerd": ours, "containerd": theirs}


def _bundles(d: Daemon) -> list[str]:
    base = d.state / "io.containerd.runtime.v2.task" / "goclient"
    return sorted(os.listdir(base)) if base.exists() else []


def test_exec_with_a_terminal_gets_a_pty(run, both):
    out = {name: run(d, "exec-tty") for name, d in both.items()}
    for name, o in out.items():
        # the process spec the client sent says terminal false; the request asks for a tty
        assert o["spec_terminal"] is False
        assert o["exit_status"] == 0, (name, o)
        lines = o["output"].split()
        assert lines[0].startswith("/dev/pts/"), (name, o)
    assert _bundles(both["pycontainerd"]) == []


def test_deleting_an_exec_never_started_reports_status_0(run, both):
    out = {name: run(d, "exec-delete") for name, d in both.items()}
    assert out["pycontainerd"] == out["containerd"] == {"exit_status": 0}


def test_user_namespace_with_a_remapped_snapshot_runs(run, both):
    out = {name: run(d, "userns", "-host-id", str(HOST_ID)) for name, d in both.items()}
    assert out["pycontainerd"] == out["containerd"]
    o = out["pycontainerd"]
    assert o["exit_status"] == 0, o
    # root inside, mapped to HOST_ID outside; the image's files belong to the remapped root
    assert o["output"].split() == ["0", "0", str(HOST_ID), "65536", "0"], o


def test_legacy_runc_options_are_honoured(run, both, tmp_path):
    """Runtime ``io.containerd.runtime.v1.linux`` with ``containerd.linux.runc.RuncOptions``:
    its ``runtime`` binary is what runs, with ``--root <runtime_root>/<namespace>``."""
    out = {}
    for name, d in both.items():
        log = tmp_path / f"{name}.argv"
        wrapper = tmp_path / f"{name}-runc"
        wrapper.write_text(f'#!/bin/sh\necho "$@" >> {log}\nexec runc "$@"\n')
        wrapper.chmod(0o755)
        root = tmp_path / f"{name}-root"
        out[name] = run(d, "legacy", "-runtime-binary", str(wrapper), "-runtime-root", str(root))
        assert out[name] == {"exit_status": 0, "output": "legacy\n"}, (name, out[name])
        calls = log.read_text().splitlines()
        assert any(c.startswith(f"--root {root}/goclient ") and " create " in f" {c} " for c in calls), calls
    assert out["pycontainerd"] == out["containerd"]


def test_a_missing_runtime_binary_reads_as_go_says(run, both):
    go_words = 'exec: "no-runc": executable file not found in $PATH'
    errs = {}
    for name, d in both.items():
        err = run(d, "missing-runtime")["error"]
        assert go_words in err, (name, err)
        errs[name] = err.replace(str(d.base / "state"), "<state>")
    # word for word, but for the state dir in the path of the runtime's log
    assert errs["pycontainerd"] == errs["containerd"]
    assert _bundles(both["pycontainerd"]) == []
