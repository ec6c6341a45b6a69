"""The debug socket of a real daemon: the log level switched at run time (a debug line
appears after the PUT, none before), SIGUSR1 dumps every task's and thread's stack into the
log, and systemd hears READY=1 / STOPPING=1 on $NOTIFY_SOCKET."""

from __future__ import annotations

import os
import signal
import socket
import stat
import time

import httpx
import pytest
from google.protobuf import empty_pb2

from pycontainerd.api.services.version.v1 import version_pb2_grpc

pytestmark = pytest.mark.integration


def wait_until(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def version(d) -> None:
    with d.channel() as ch:
        version_pb2_grpc.VersionStub(ch).Version(empty_pb2.Empty(), timeout=10)


def rpc_lines(d) -> list[str]:
    return [line for line in d.log().splitlines() if "event='rpc'" in line and "Version/Version" in line]


def test_log_level_changes_live_through_the_debug_socket(daemon_factory, tmp_path):
    sock = tmp_path / "debug.sock"
    d = daemon_factory(f'[debug]\naddress = "{sock}"\nuid = 4321\ngid = 4322\n', extra_args=["--log-level", "info"])
    assert wait_until(sock.exists), d.log()
    st = os.stat(sock)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660
    if os.geteuid() == 0:
        assert (st.st_uid, st.st_gid) == (4321, 4322)
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)), base_url="http://debug", timeout=10) as http:
        assert http.get("/debug/loglevel").text == "info\n"
        version(d)
        assert rpc_lines(d) == []  # info: no per-call debug line

        assert http.put("/debug/loglevel", content=b"debug").text == "debug\n"
        version(d)
        assert wait_until(lambda: len(rpc_lines(d)) == 1), d.log()[-2000:]
        assert "level='debug'" in rpc_lines(d)[0] and "code='OK'" in rpc_lines(d)[0]

        assert http.put("/debug/loglevel", content=b"info").status_code == 200
        version(d)
        assert http.get("/debug/loglevel").text == "info\n"
        bad = http.put("/debug/loglevel", content=b"chatty")
        assert bad.status_code == 400 and "unknown log level 'chatty'" in bad.text
        stacks = http.get("/debug/stacks").text
        assert "coro=run" in stacks and "thread MainThread" in stacks
    assert len(rpc_lines(d)) == 1  # back at info: the third call logged nothing
    changes = [line for line in d.log().splitlines() if "event='log level changed'" in line]
    assert ["new_level='debug'" in changes[0], "previous='debug'" in changes[1]] == [True, True]
    assert d.stop() == 0
    assert not sock.exists()


def test_sigusr1_logs_every_task_and_thread_stack(daemon_factory, tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    d = daemon_factory(env={"TMPDIR": str(tmp)})
    d.signal(signal.SIGUSR1)
    assert wait_until(lambda: "event='stack dump written'" in d.log()), d.log()[-2000:]
    line = next(x for x in d.log().splitlines() if "=== BEGIN task and thread stack dump ===" in x)
    assert "level='info'" in line and "task Task-1 coro=run" in line and "thread MainThread" in line
    dump = (tmp / f"pycontainerd.{d.proc.pid}.stacks.log").read_text()
    assert dump.startswith("=== asyncio tasks (")
    assert "pycontainerd/server/daemon.py" in dump and "await stop.wait()" in dump
    assert "=== threads (" in dump
    version(d)  # the daemon serves on, and a second signal dumps again
    d.signal(signal.SIGUSR1)
    assert wait_until(lambda: d.log().count("event='stack dump written'") == 2)
    assert d.stop() == 0


def test_systemd_hears_ready_and_stopping(daemon_factory, tmp_path):
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(path))
        notify.settimeout(30)
        d = daemon_factory(env={"NOTIFY_SOCKET": str(path)})
        assert notify.recv(64) == b"READY=1"
        version(d)
        d.signal(signal.SIGTERM)
        assert notify.recv(64) == b"STOPPING=1"
        # wait for the exit this SIGTERM causes: stop() would signal again, and a second
        # SIGTERM after the event loop closed (its handler gone) ends the daemon by the signal
        assert d.proc.wait(30) == 0
