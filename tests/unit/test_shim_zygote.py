"""The shim zygote (no root; fake runc): our daemon's shims are forks of one pre-imported
interpreter, and still everything the runtime v2 contract promises — a session of their
own, nothing of the daemon's held open, surviving the zygote — while ``start``/``delete``
as commands keep working when the zygote is off or gone."""

from __future__ import annotations

import asyncio
import json
import os
import signal

import pytest

from pycontainerd.api.runtime.task.v2 import shim_pb2
from pycontainerd.runtime.task import TaskManager
from tests.unit.test_shim_fake_runc import (  # noqa: F401  (fixtures)
    _kill,
    daemon,
    options,
    runc_bin,
    spec,
    state,
)


async def shim_pid(task) -> int:
    info = await task.shim.call("Connect", shim_pb2.ConnectRequest(id=task.id), shim_pb2.ConnectResponse)
    return info.shim_pid


def stat_fields(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def socket_inodes(pid: int) -> set[str]:
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:"):
            out.add(target)
    return out


def alive(pid: int) -> bool:
    try:
        return stat_fields(pid)[0] != "Z"
    except OSError:
        return False


async def test_shims_are_forks_of_the_zygote_in_sessions_of_their_own(daemon, runc_bin) -> None:  # noqa: F811
    tm, _ev, _sink, _ = daemon
    tasks = [await tm.create("default", f"z{i}", spec(["sleep", "100"]), [], runtime_options=options(runc_bin))
             for i in range(3)]
    zygote = tm.shims.zygote
    assert zygote is not None and zygote.alive
    zygote_sockets = socket_inodes(zygote.pid)
    pids = []
    for task in tasks:
        await task.start()
        pid = await shim_pid(task)
        pids.append(pid)
        fields = stat_fields(pid)
        assert int(fields[1]) == zygote.pid  # its parent: the zygote, not the daemon
        assert int(fields[3]) == pid  # setsid: its own session
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = [a for a in f.read().split(b"\0") if a]
        assert argv[:5] == [b"pycontainerd-shim", b"-namespace", b"default", b"-id", task.id.encode()]
        # the zygote's request socket is not held by the shim (else the zygote never sees EOF)
        assert not socket_inodes(pid) & zygote_sockets
        assert os.readlink(f"/proc/{pid}/cwd") == task.bundle.path
    assert len(set(pids)) == 3
    for task in tasks:
        await task.kill(signal.SIGKILL)
        assert (await task.wait(timeout=10)).exit_status == 137
        await tm.delete_task("default", task.id)
    await tm.close()
    assert not zygote.alive and not alive(zygote.pid)  # closed with the manager


async def test_shims_outlive_the_zygote_and_a_new_one_takes_over(daemon, runc_bin) -> None:  # noqa: F811
    tm, _ev, _sink, _ = daemon
    first = await tm.create("default", "before", spec(["sleep", "100"]), [], runtime_options=options(runc_bin))
    await first.start()
    old = tm.shims.zygote.pid
    os.kill(old, signal.SIGKILL)  # the zygote dies (as with the daemon): its shims live on
    for _ in range(200):
        if not tm.shims.zygote.alive:
            break
        await asyncio.sleep(0.02)
    second = await tm.create("default", "after", spec(["true"]), [], runtime_options=options(runc_bin))
    assert (await first.state()).status == "running"
    assert tm.shims.zygote.alive and tm.shims.zygote.pid != old
    await second.start()
    assert (await second.wait(timeout=10)).exit_status == 0
    await tm.delete_task("default", "after")
    await first.kill(signal.SIGKILL)
    await first.wait(timeout=10)
    await tm.delete_task("default", "before")


async def test_a_group_shares_one_shim_through_the_zygote(daemon, runc_bin) -> None:  # noqa: F811
    tm, _ev, _sink, _ = daemon
    grouped = json.loads(spec(["sleep", "100"]))
    grouped["annotations"] = {"io.containerd.runc.v2.group": "pod1"}
    a = await tm.create("default", "ga", json.dumps(grouped).encode(), [], runtime_options=options(runc_bin))
    b = await tm.create("default", "gb", json.dumps(grouped).encode(), [], runtime_options=options(runc_bin))
    assert a.shim.address == b.shim.address
    assert await shim_pid(a) == await shim_pid(b)
    for t in (a, b):
        await t.start()
        await t.kill(signal.SIGKILL)
        await t.wait(timeout=10)
        await tm.delete_task("default", t.id)


@pytest.mark.parametrize("how", ["off", "unavailable"])
async def test_without_the_zygote_start_runs_as_a_command(daemon, state, runc_bin, monkeypatch, how) -> None:  # noqa: F811
    _tm, _ev, sink, managers = daemon
    if how == "off":
        monkeypatch.setenv("PYCONTAINERD_SHIM_ZYGOTE", "0")
        tm2 = TaskManager(f"{state}/run", address=f"{state}/d.sock", root=f"{state}/root", events=sink)
        assert tm2.shims.zygote is None
    else:
        tm2 = TaskManager(f"{state}/run", address=f"{state}/d.sock", root=f"{state}/root", events=sink)
        tm2.shims.zygote._retry_after = float("inf")  # as after a failed start: fall back
    managers.append(tm2)
    task = await tm2.create("default", f"cmd-{how}", spec(["sh", "-c", "exit 5"]), [],
                            runtime_options=options(runc_bin))
    pid = await shim_pid(task)
    assert int(stat_fields(pid)[3]) == pid
    assert int(stat_fields(pid)[1]) != os.getpid()  # `start` exited: reparented
    await task.start()
    assert (await task.wait(timeout=10)).exit_status == 5
    await tm2.delete_task("default", task.id)
    _kill(pid)
