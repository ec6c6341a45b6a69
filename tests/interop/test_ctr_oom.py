"""C15, OOM right after start, through Debian's ctr: a container whose process is killed by
the OOM killer within milliseconds of its start exits 137, and ``/tasks/oom`` for it is
published before its ``/tasks/exit``, every time (the shim registers its OOM watch between
``runc create`` and ``runc start``, before the user's process runs)."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from tests.interop.test_ctr_foundation import ctr

pytestmark = [pytest.mark.interop, pytest.mark.root]

RUNS = 10
LIMIT = 16 * 1024 * 1024


def _topics_by_container(out: str) -> dict[str, list[str]]:
    """`ctr events` lines (``<date> <time> <tz> <zone> <namespace> <topic> <json>``) → the
    topics of each container, in the order they were printed."""
    seen: dict[str, list[str]] = {}
    for line in out.splitlines():
        parts = line.split(maxsplit=6)
        if len(parts) < 7 or not parts[5].startswith("/tasks/"):
            continue
        try:
            cid = json.loads(parts[6]).get("container_id", "")
        except ValueError:
            continue
        seen.setdefault(cid, []).append(parts[5])
    return seen


def test_oom_right_after_start_is_published_before_the_exit(ctr_bin, daemon, busybox_image):
    ref = busybox_image.oci.ref
    ctr(ctr_bin, daemon, "images", "pull", "--plain-http", ref)
    events = subprocess.Popen([ctr_bin, "-a", daemon.address, "events"], stdout=subprocess.PIPE, text=True)
    names = [f"oom{i}" for i in range(RUNS)]
    try:
        time.sleep(0.5)  # the subscription is in place before the first container
        for name in names:
            # a 64 MiB buffer in a 16 MiB cgroup: killed as soon as dd touches it
            run = ctr(ctr_bin, daemon, "run", "--rm", "--memory-limit", str(LIMIT), ref, name,
                      "/bin/busybox", "dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1", check=False)
            assert run.returncode == 137, (name, run.returncode, run.stderr)
        time.sleep(0.5)
    finally:
        events.terminate()
        out, _ = events.communicate(timeout=10)
        for name in names:
            ctr(ctr_bin, daemon, "tasks", "kill", "-s", "9", name, check=False)
            ctr(ctr_bin, daemon, "tasks", "rm", "-f", name, check=False)
            ctr(ctr_bin, daemon, "containers", "rm", name, check=False)
    seen = _topics_by_container(out)
    for name in names:
        topics = seen.get(name, [])
        assert "/tasks/oom" in topics and "/tasks/exit" in topics, (name, topics, out)
        assert topics.index("/tasks/oom") < topics.index("/tasks/exit"), (name, topics)
        assert topics.index("/tasks/start") < topics.index("/tasks/exit"), (name, topics)
