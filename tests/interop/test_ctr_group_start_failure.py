"""Debian's ctr, through the containerd API: a shim shared by several containers (the
``io.containerd.runc.v2.group`` annotation) survives any one of them failing to start.

Each way runc's ``create`` can fail (a missing binary, a working dir that is a file, a
user who may not reach the command, a mount that fails) is tried with ``ctr run`` in the
group of a running ``sleep``: ctr reports runc's message, and the sleeper, its task and
the group's shim (same pid) carry on; ``ctr tasks exec`` still reaches it. Afterwards
the group's shim exits only with its last task.
"""

from __future__ import annotations

import os
import time
import uuid

import pytest

from tests.interop.test_ctr_foundation import ctr
from pycontainerd.testing import processes_mentioning

pytestmark = [pytest.mark.interop, pytest.mark.root]

GROUP = "io.containerd.runc.v2.group"


def shim_pids(marker: str) -> list[int]:
    out = []
    for pid in processes_mentioning(marker):
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().startswith("pycontainerd-sh"):
                    out.append(pid)
        except OSError:
            continue
    return out


def failures(tmp_path):
    # ctr has no --user: root without its DAC capabilities may not enter another user's 0700 dir
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "theirs").write_text("#!/bin/sh\necho ran\n")
    os.chmod(tools / "theirs", 0o755)
    os.chmod(tools, 0o700)
    os.chown(tools, 1000, 1000)
    no_dac = ["--cap-drop", "CAP_DAC_OVERRIDE", "--cap-drop", "CAP_DAC_READ_SEARCH", "--cap-drop", "CAP_FOWNER"]
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory\n")
    return [
        ("missing-binary", [], ["/nonexistent"], "/nonexistent"),
        ("bad-workdir", ["--cwd", "/bin/busybox"], ["sleep", "1000"], "not a directory"),
        ("bad-user", [*no_dac, "--mount", f"type=bind,src={tools},dst=/tools,options=rbind:ro"],
         ["/tools/theirs"], "permission denied"),
        ("bad-mount", ["--mount", f"type=bind,src={a_file},dst=/bin,options=rbind:rw"], ["sleep", "1000"],
         "not a directory"),
    ]


def test_group_shim_survives_failed_starts(ctr_bin, daemon, busybox_image, tmp_path):
    image = busybox_image.oci.ref
    ctr(ctr_bin, daemon, "images", "pull", "--plain-http", image)
    group = f"grp-{uuid.uuid4().hex[:8]}"
    keeper = f"keeper-{uuid.uuid4().hex[:8]}"
    made = [keeper]
    try:
        ctr(ctr_bin, daemon, "run", "-d", "--annotation", f"{GROUP}={group}", image, keeper, "sleep", "100000")
        shims = shim_pids(keeper)
        assert len(shims) == 1, shims
        before = ctr(ctr_bin, daemon, "tasks", "ls").stdout
        for name, flags, command, expect in failures(tmp_path):
            cid = f"{name}-{uuid.uuid4().hex[:6]}"
            made.append(cid)
            run = ctr(ctr_bin, daemon, "run", "-d", "--annotation", f"{GROUP}={group}", *flags, image, cid, *command,
                      check=False)
            assert run.returncode != 0 and expect in run.stderr, (name, run.stderr)
            assert run.stderr.startswith("ctr: failed to create shim task: OCI runtime create failed: "), run.stderr
            tasks = ctr(ctr_bin, daemon, "tasks", "ls").stdout
            assert tasks == before and "RUNNING" in tasks, (name, tasks)
            assert shim_pids(keeper) == shims, name
            out = ctr(ctr_bin, daemon, "tasks", "exec", "--exec-id", f"e-{name}", keeper, "echo", "alive").stdout
            assert out == "alive\n", name
            ctr(ctr_bin, daemon, "containers", "rm", cid)
            bundles = daemon.state / "io.containerd.runtime.v2.task" / "default"
            assert sorted(os.listdir(bundles)) == [keeper], name
        assert "shim disconnected" not in daemon.log()
    finally:  # whatever was made, even by a start that wrongly succeeded
        for cid in reversed(made):
            ctr(ctr_bin, daemon, "tasks", "kill", "-s", "9", cid, check=False)
            for _ in range(100):
                rm = ctr(ctr_bin, daemon, "tasks", "rm", cid, check=False)
                if rm.returncode == 0 or "not found" in rm.stderr:
                    break
                time.sleep(0.1)
            ctr(ctr_bin, daemon, "containers", "rm", cid, check=False)
    # the group's shim goes with its last task
    deadline = time.monotonic() + 10
    while shim_pids(keeper) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert shim_pids(keeper) == []
