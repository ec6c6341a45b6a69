"""The real ``pyctr`` binary against a real daemon: run (output, exit codes, env, mounts,
limits), detached tasks and every task verb, events, and clear one-line errors. Every test
leaves no task, container, mount, bundle or fifo behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tests.support import pyctr as pyctr_support
from tests.support.pyctr import no_leftovers, pyctr, wait_for  # noqa: F401  (autouse fixture)

pytestmark = [pytest.mark.integration, pytest.mark.root]

image = pyctr_support.image  # fixture: busybox pulled (and unpacked) into the daemon; yields its ref


def test_run_rm_prints_hello_and_passes_exit_codes(daemon, image):
    out = pyctr(daemon, "run", "--rm", image, "hello", "echo", "hello")
    assert out.stdout == "hello\n" and out.returncode == 0 and out.stderr == ""
    three = pyctr(daemon, "run", "--rm", image, "three", "sh", "-c", "echo to-stderr >&2; exit 3", check=False)
    assert three.returncode == 3
    assert three.stderr == "to-stderr\n"
    assert pyctr(daemon, "containers", "ls", "-q").stdout.split() == []


def test_run_without_rm_keeps_the_container_and_stdin_reaches_the_process(daemon, image, tmp_path):
    data = tmp_path / "in.txt"
    data.write_text("line one\nline two\n")
    with open(data) as f:
        out = pyctr(daemon, "run", image, "catter", "sh", "-c", "cat; echo end", stdin=f)
    assert out.stdout == "line one\nline two\nend\n"
    assert pyctr(daemon, "containers", "ls", "-q").stdout.split() == ["catter"]
    assert pyctr(daemon, "tasks", "ls", "-q").stdout.split() == []  # the task was deleted
    pyctr(daemon, "containers", "rm", "catter")


def test_run_flags_reach_the_spec(daemon, image, tmp_path):
    (tmp_path / "app.env").write_text("# comment\nFROM_FILE=yes\n\nOVERRIDE=file\n")
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "note").write_text("from the host\n")
    out = pyctr(daemon, "run", "--rm", "--env-file", tmp_path / "app.env", "-e", "OVERRIDE=flag",
                "--mount", f"type=bind,src={shared},dst=/shared,options=rbind:ro", "--hostname", "box",
                "--cwd", "/shared", "--user", "1000:1000", "--memory-limit", "64m", "--cpus", "0.5",
                image, "flags", "sh", "-c",
                'echo "$FROM_FILE $OVERRIDE $(hostname) $(pwd) $(id -u):$(id -g)"; cat note; touch x || echo ro')
    lines = out.stdout.splitlines()
    assert lines[0] == "yes flag box /shared 1000:1000"
    assert lines[1] == "from the host"
    assert lines[2] == "ro"
    # the limits are in the cgroup: check through a detached container's spec
    pyctr(daemon, "containers", "create", "--memory-limit", "64MiB", "--cpus", "1.5", "--net-host", image,
          "limits", "true")
    spec = json.loads(pyctr(daemon, "containers", "info", "--spec", "limits").stdout)
    assert spec["linux"]["resources"]["memory"]["limit"] == 64 << 20
    assert spec["linux"]["resources"]["cpu"] == {"quota": 150000, "period": 100000}
    assert all(n["type"] != "network" for n in spec["linux"]["namespaces"])
    pyctr(daemon, "containers", "rm", "limits")


def test_detached_task_verbs(daemon, image):
    pyctr(daemon, "run", "-d", image, "web", "sleep", "1000")
    rows = pyctr(daemon, "tasks", "ls").stdout.splitlines()
    assert rows[0].split() == ["TASK", "PID", "STATUS"]
    assert rows[1].split()[0] == "web" and rows[1].split()[2] == "RUNNING"
    tasks_json = json.loads(pyctr(daemon, "tasks", "ls", "--format", "json").stdout)
    assert tasks_json[0]["container_id"] == "web" and tasks_json[0]["status"] == "running"

    listing = pyctr(daemon, "tasks", "exec", "--exec-id", "e1", "web", "ls", "/").stdout.split()
    assert "bin" in listing and "proc" in listing
    failing = pyctr(daemon, "tasks", "exec", "web", "sh", "-c", "exit 5", check=False)
    assert failing.returncode == 5
    pyctr(daemon, "tasks", "exec", "-d", "--exec-id", "bg", "web", "sleep", "1000")
    ps = pyctr(daemon, "tasks", "ps", "web").stdout.splitlines()
    assert ps[0].split() == ["PID", "INFO"] and len(ps) == 3 and any(r.split()[1] == "bg" for r in ps[1:])
    metrics = pyctr(daemon, "tasks", "metrics", "web").stdout
    assert "METRIC" in metrics and ("memory.usage_in_bytes" in metrics or "memory.usage" in metrics)
    pyctr(daemon, "tasks", "pause", "web")
    assert "PAUSED" in pyctr(daemon, "tasks", "ls").stdout
    pyctr(daemon, "tasks", "resume", "web")
    assert "RUNNING" in pyctr(daemon, "tasks", "ls").stdout

    busy = pyctr(daemon, "tasks", "rm", "web", check=False)
    assert busy.returncode == 1 and busy.stderr.startswith("pyctr: ") and len(busy.stderr.splitlines()) == 1
    pyctr(daemon, "tasks", "kill", "-s", "KILL", "--all", "web")
    assert wait_for(lambda: "STOPPED" in pyctr(daemon, "tasks", "ls").stdout)
    pyctr(daemon, "tasks", "rm", "web")
    assert pyctr(daemon, "tasks", "ls", "-q").stdout.split() == []
    pyctr(daemon, "containers", "rm", "web")
    assert pyctr(daemon, "containers", "ls", "-q").stdout.split() == []
    snaps = pyctr(daemon, "snapshots", "ls").stdout
    assert "web" not in snaps.split()  # the rootfs went with the container


def test_containers_create_then_tasks_start(daemon, image):
    pyctr(daemon, "containers", "create", "--label", "team=a", image, "later", "sh", "-c", "echo started; exit 4")
    info = json.loads(pyctr(daemon, "containers", "info", "later").stdout)
    assert info["id"] == "later" and info["image"] == image and info["labels"]["team"] == "a"
    assert info["spec"]["process"]["args"] == ["sh", "-c", "echo started; exit 4"]
    assert "team=b,x=1" in pyctr(daemon, "containers", "label", "later", "team=b", "x=1").stdout
    listed = json.loads(pyctr(daemon, "containers", "ls", "--format", "json").stdout)
    assert listed[0]["id"] == "later" and listed[0]["labels"]["x"] == "1"
    out = pyctr(daemon, "tasks", "start", "later", check=False)
    assert out.returncode == 4 and out.stdout == "started\n"
    pyctr(daemon, "c", "rm", "later")


def test_events_prints_lifecycle(daemon, image):
    cmd = [sys.executable, "-m", "pycontainerd_cmd.ctr", "-a", daemon.address, "events"]
    events = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.5)
        pyctr(daemon, "run", "--rm", image, "ev", "true")
        time.sleep(0.5)
    finally:
        events.terminate()
        out, err = events.communicate(timeout=10)
    lines = out.splitlines()
    topics = [line.split()[5] for line in lines if len(line.split()) > 5]
    for topic in ("/containers/create", "/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete",
                  "/containers/delete"):
        assert topic in topics, (topic, out, err)
    assert topics.index("/tasks/start") < topics.index("/tasks/exit") < topics.index("/tasks/delete")
    exit_line = next(line for line in lines if " /tasks/exit " in line)
    assert json.loads(exit_line.split(" /tasks/exit ", 1)[1])["container_id"] == "ev"


def test_errors_are_one_line_and_exit_1(daemon, image, busybox_image):
    missing = pyctr(daemon, "run", "--rm", f"{busybox_image.registry.host}/library/nothing:here", "x", "true",
                    check=False)
    assert missing.returncode == 1
    assert missing.stderr.count("\n") == 1 and missing.stderr.startswith("pyctr: image ")
    assert "not found" in missing.stderr and "Traceback" not in missing.stderr
    nothing = pyctr(daemon, "tasks", "kill", "ghost", check=False)
    assert nothing.returncode == 1 and nothing.stderr.startswith("pyctr: ") and "not found" in nothing.stderr
    pyctr(daemon, "run", "-d", image, "dup", "sleep", "100")
    dup = pyctr(daemon, "run", "-d", image, "dup", "sleep", "1", check=False)
    assert dup.returncode == 1 and "already exists" in dup.stderr and dup.stderr.count("\n") == 1
    no_binary = pyctr(daemon, "run", "--rm", image, "nobin", "/no/such/binary", check=False)
    assert no_binary.returncode != 0 and "/no/such/binary" in no_binary.stderr
    assert "nobin" not in pyctr(daemon, "containers", "ls", "-q").stdout.split()
    pyctr(daemon, "tasks", "rm", "-f", "dup")
    pyctr(daemon, "containers", "rm", "dup")
    debug = pyctr(daemon, "--debug", "images", "rm", "never:pulled", check=False)
    assert debug.returncode == 1 and "pyctr: image" in debug.stderr
    usage = pyctr(daemon, "run", check=False)
    assert usage.returncode == 2 and "Usage:" in usage.stderr


def test_unreachable_daemon_and_env_address(tmp_path):
    sock = tmp_path / "nobody.sock"
    cmd = [sys.executable, "-m", "pycontainerd_cmd.ctr", "--connect-timeout", "0.5", "version"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYCONTAINERD_ADDRESS": str(sock), "CONTAINERD_ADDRESS": "/elsewhere"})
    assert proc.returncode == 1
    assert proc.stderr.startswith("pyctr: ") and str(sock) in proc.stderr and proc.stderr.count("\n") == 1


def test_run_with_a_tty(daemon, image):
    from tests.support.ptyrun import run_in_pty

    cmd = [sys.executable, "-m", "pycontainerd_cmd.ctr", "-a", daemon.address, "run", "-t", "--rm", image, "tty1",
           "sh", "-c", "tty; read x; echo got=$x; exit 7"]
    returncode, text = run_in_pty(cmd, timeout=60, answer=(b"/dev/pts/", b"abc\r"))
    assert "/dev/pts/" in text and "got=abc" in text, text
    assert returncode == 7
