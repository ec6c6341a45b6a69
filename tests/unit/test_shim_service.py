"""The shim's task service in-process, with an injected runtime (no processes, no root).

Exits are injected the way the reaper reports them (``on_exit``), including at the worst
moments — while a start is in progress, before a pid is known — to pin down the event
order invariant (STYLE §4.9, containerd's ``preStart``/``handleStarted``)."""

from __future__ import annotations

import json
import re
import os

import pytest

from pycontainerd import errdefs
from pycontainerd.api.runtime.runc.options import oci_pb2 as runc_options
from pycontainerd.shim import proto as api
from pycontainerd.shim.runc import Result
from pycontainerd.shim.service import ShimTaskService, exit_code
from pycontainerd.ttrpc.reactor import Reactor
from pycontainerd.ttrpc.server import Deferred


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []
        self.hooks: dict[str, object] = {}

    def publish(self, topic: str, event) -> None:
        hook = self.hooks.get(topic)
        self.events.append((topic, hook(event) if hook else event))

    @property
    def topics(self) -> list[str]:
        return [t for t, _ in self.events]


class FakeRuntime:
    """Stands in for runc: writes pid files, remembers calls, runs hooks."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.next_pid = 5_000_000  # above PID_MAX_LIMIT (2**22): no real process is ever signalled
        self.on: dict[str, object] = {}
        self.fail: set[str] = set()

    def __call__(self, argv, stdio, input):
        args = list(argv)
        i = args.index("--log-format") + 2 if "--log-format" in args else 3
        cmd, rest = args[i], args[i + 1:]
        self.calls.append([cmd, *rest])
        if cmd in self.fail:
            return Result(1, b"", f"{cmd} failed on purpose".encode())
        if cmd in ("create", "exec"):
            pid_file = rest[rest.index("--pid-file") + 1]
            self.next_pid += 1
            with open(pid_file, "w") as f:
                f.write(str(self.next_pid))
            if stdio is not None and stdio.stdout is not None:
                os.write(stdio.stdout, f"{cmd} output\n".encode())
        hook = self.on.get(cmd)
        if hook:
            hook(rest)
        if cmd == "ps":
            return Result(0, json.dumps([5_000_001]).encode())
        return Result(0)


@pytest.fixture
def env(tmp_path):
    reactor = Reactor()
    rec = Recorder()
    rt = FakeRuntime()
    svc = ShimTaskService(reactor, "default", rec, runner=rt, clock_ns=lambda: 1_700_000_000_123_456_789)
    bundle = tmp_path / "io.containerd.runtime.v2.task" / "default" / "c1"
    bundle.mkdir(parents=True)
    (bundle / "config.json").write_text(json.dumps({"process": {"args": ["true"]}, "linux": {
        "namespaces": [{"type": "pid"}, {"type": "mount"}]}}))
    yield svc, rec, rt, str(bundle), reactor
    for c in list(svc.containers.values()):
        for p in c.all():
            if p.io is not None:
                p.io.close()
    reactor.close()


def create(svc, bundle, **kw) -> int:
    return svc.create(api.CreateTaskRequest(id="c1", bundle=bundle, **kw)).pid


def test_lifecycle_events_and_wait(env, tmp_path) -> None:
    svc, rec, rt, bundle, _ = env
    out = tmp_path / "out.log"
    rec.hooks["/tasks/exit"] = lambda ev: (ev, out.read_text())  # what the client could read then
    pid = create(svc, bundle, stdout=f"file://{out}")
    assert rt.calls[0][:2] == ["create", "--bundle"] and rt.calls[0][-1] == "c1"
    assert svc.state(api.StateRequest(id="c1")).status == api.CREATED
    assert svc.start(api.StartRequest(id="c1")).pid == pid
    waiting = svc.wait(api.WaitRequest(id="c1"))
    assert isinstance(waiting, Deferred) and not waiting.done
    svc.on_exit(pid, 3)
    assert rec.topics == ["/tasks/create", "/tasks/start", "/tasks/exit"]
    ev, output_at_exit = rec.events[2][1]
    assert (ev.container_id, ev.id, ev.pid, ev.exit_status) == ("c1", "c1", pid, 3)
    assert ev.exited_at.to_ns() == 1_700_000_000_123_456_789
    assert output_at_exit == "create output\n"  # drained before the exit went out
    assert waiting.done and api.WaitResponse.decode(waiting.result).exit_status == 3
    st = svc.state(api.StateRequest(id="c1"))
    assert st.status == api.STOPPED and st.exit_status == 3
    resp = svc.delete(api.DeleteRequest(id="c1"))
    assert (resp.pid, resp.exit_status) == (pid, 3)
    assert rec.topics[-1] == "/tasks/delete" and "c1" not in svc.containers
    with pytest.raises(errdefs.NotFound, match="container not created"):
        svc.state(api.StateRequest(id="c1"))


def test_exit_during_start_is_held_until_after_the_start_event(env) -> None:
    svc, rec, rt, bundle, _ = env
    pid = create(svc, bundle)
    # the reaper reports the exit while `runc start` is still running
    rt.on["start"] = lambda rest: svc.on_exit(pid, 0)
    svc.start(api.StartRequest(id="c1"))
    assert rec.topics == ["/tasks/create", "/tasks/start", "/tasks/exit"]


def test_exec_exit_before_its_pid_is_known_is_held(env) -> None:
    svc, rec, rt, bundle, _ = env
    create(svc, bundle)
    svc.start(api.StartRequest(id="c1"))
    spec = api.Any(type_url="api.containerd.io/opencontainers/runtime-spec/1/Process",
                       value=json.dumps({"args": ["echo", "x"], "cwd": "/"}).encode())
    svc.exec(api.ExecProcessRequest(id="c1", exec_id="e1", spec=spec))
    # the exec'd process exits before `runc exec` returns and before its pid file is read
    rt.on["exec"] = lambda rest: svc.on_exit(rt.next_pid, 7)
    epid = svc.start(api.StartRequest(id="c1", exec_id="e1")).pid
    assert rec.topics == ["/tasks/create", "/tasks/start", "/tasks/exec-added", "/tasks/exec-started", "/tasks/exit"]
    ev = rec.events[-1][1]
    assert (ev.id, ev.pid, ev.exit_status) == ("e1", epid, 7)
    assert svc.wait(api.WaitRequest(id="c1", exec_id="e1"))  # answers at once
    assert api.WaitResponse.decode(svc.wait(api.WaitRequest(id="c1", exec_id="e1"))).exit_status == 7


def test_init_exit_waits_for_running_execs(env) -> None:
    svc, rec, rt, bundle, _ = env
    pid = create(svc, bundle)
    svc.start(api.StartRequest(id="c1"))
    spec = api.Any(value=json.dumps({"args": ["sleep", "9"]}).encode())
    for e in ("e1", "e2"):
        svc.exec(api.ExecProcessRequest(id="c1", exec_id=e, spec=spec))
        svc.start(api.StartRequest(id="c1", exec_id=e))
    e1, e2 = svc.containers["c1"].execs["e1"].pid, svc.containers["c1"].execs["e2"].pid
    init_wait = svc.wait(api.WaitRequest(id="c1"))
    svc.on_exit(pid, 137)
    assert "/tasks/exit" not in rec.topics and not init_wait.done
    assert svc.state(api.StateRequest(id="c1")).status == api.RUNNING
    svc.on_exit(e2, 137)
    svc.on_exit(e1, 137)
    exits = [(ev.id, ev.exit_status) for t, ev in rec.events if t == "/tasks/exit"]
    assert exits == [("e2", 137), ("e1", 137), ("c1", 137)]
    assert init_wait.done


def test_no_pid_namespace_kills_all_on_init_exit(env) -> None:
    svc, rec, rt, bundle, _ = env
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump({"process": {"args": ["true"]}, "linux": {"namespaces": [{"type": "mount"}]}}, f)
    pid = create(svc, bundle)
    svc.start(api.StartRequest(id="c1"))
    svc.on_exit(pid, 0)
    assert ["kill", "--all", "c1", "9"] in rt.calls


def test_kill_before_start_then_delete(env) -> None:
    svc, rec, rt, bundle, _ = env
    pid = create(svc, bundle)
    svc.kill(api.KillRequest(id="c1", signal=9))
    assert rt.calls[-1] == ["kill", "c1", "9"]
    svc.on_exit(pid, 137)
    assert svc.state(api.StateRequest(id="c1")).status == api.STOPPED
    with pytest.raises(errdefs.FailedPrecondition, match="cannot start task in stopped state"):
        svc.start(api.StartRequest(id="c1"))
    with pytest.raises(errdefs.NotFound, match="process already finished"):
        svc.kill(api.KillRequest(id="c1", signal=9))
    assert svc.delete(api.DeleteRequest(id="c1")).exit_status == 137
    assert rec.topics == ["/tasks/create", "/tasks/exit", "/tasks/delete"]


def test_delete_created_task_releases_waiters(env) -> None:
    svc, rec, rt, bundle, _ = env
    pid = create(svc, bundle)
    w = svc.wait(api.WaitRequest(id="c1"))
    resp = svc.delete(api.DeleteRequest(id="c1"))
    assert resp.exit_status == 137 and w.done
    svc.on_exit(pid, 137)  # the runtime killed it; its late exit means nothing now
    assert rec.topics == ["/tasks/create", "/tasks/delete"]


def test_pause_resume_and_illegal_calls(env) -> None:
    svc, rec, rt, bundle, _ = env
    create(svc, bundle)
    with pytest.raises(errdefs.FailedPrecondition, match="cannot pause task in created state"):
        svc.pause(api.PauseRequest(id="c1"))
    svc.start(api.StartRequest(id="c1"))
    with pytest.raises(errdefs.FailedPrecondition, match="cannot delete task in running state"):
        svc.delete(api.DeleteRequest(id="c1"))
    svc.pause(api.PauseRequest(id="c1"))
    assert svc.state(api.StateRequest(id="c1")).status == api.PAUSED
    with pytest.raises(errdefs.FailedPrecondition, match="cannot exec task in paused state"):
        svc.exec(api.ExecProcessRequest(id="c1", exec_id="e", spec=api.Any(value=b'{"args":["x"]}')))
    svc.resume(api.ResumeRequest(id="c1"))
    assert rec.topics[-2:] == ["/tasks/paused", "/tasks/resumed"]
    with pytest.raises(errdefs.NotImplementedYet):
        svc.checkpoint(api.CheckpointTaskRequest(id="c1"))


def test_exec_errors(env) -> None:
    svc, rec, rt, bundle, _ = env
    create(svc, bundle)
    spec = api.Any(value=b'{"args": ["true"]}')
    svc.exec(api.ExecProcessRequest(id="c1", exec_id="e1", spec=spec))
    with pytest.raises(errdefs.AlreadyExists):
        svc.exec(api.ExecProcessRequest(id="c1", exec_id="e1", spec=spec))
    with pytest.raises(errdefs.InvalidArgument):
        svc.exec(api.ExecProcessRequest(id="c1", exec_id="e2", spec=api.Any(value=b"not json")))
    with pytest.raises(errdefs.InvalidArgument):
        svc.exec(api.ExecProcessRequest(id="c1", exec_id="../x", spec=spec))
    with pytest.raises(errdefs.NotFound):
        svc.start(api.StartRequest(id="c1", exec_id="nope"))
    with pytest.raises(errdefs.FailedPrecondition, match="process not created"):
        svc.kill(api.KillRequest(id="c1", exec_id="e1", signal=9))
    rt.fail.add("exec")
    with pytest.raises(errdefs.ContainerdError, match="OCI runtime exec failed: exec failed on purpose"):
        svc.start(api.StartRequest(id="c1", exec_id="e1"))
    assert svc.state(api.StateRequest(id="c1", exec_id="e1")).status == api.STOPPED
    assert svc.delete(api.DeleteRequest(id="c1", exec_id="e1")).exit_status == 255
    assert "e1" not in svc.containers["c1"].execs


def test_create_failure_leaves_nothing(env) -> None:
    svc, rec, rt, bundle, _ = env
    rt.fail.add("create")
    with pytest.raises(errdefs.ContainerdError, match="OCI runtime create failed"):
        create(svc, bundle, stdout=os.path.join(bundle, "out"))
    assert svc.containers == {} and rec.topics == []
    with pytest.raises(errdefs.InvalidArgument):
        svc.create(api.CreateTaskRequest(id="c2", bundle="/nonexistent"))


def test_runtime_options_choose_binary_and_root(env) -> None:
    svc, rec, rt, bundle, _ = env
    opts = runc_options.Options(binary_name="crun", root="/run/other")
    create(svc, bundle, options=api.Any(type_url="containerd.runc.v1.Options", value=opts.SerializeToString()))
    c = svc.containers["c1"]
    assert c.runc.binary == "crun" and c.runc.root == "/run/other/default"
    assert json.load(open(os.path.join(bundle, "options.json")))["binary_name"] == "crun"
    with pytest.raises(errdefs.AlreadyExists):
        create(svc, bundle)


def test_default_runc_root_follows_the_state_dir(env, tmp_path) -> None:
    svc, rec, rt, bundle, _ = env
    create(svc, bundle)
    assert svc.containers["c1"].runc.root == str(tmp_path / "runc" / "default")


def test_pids_marks_exec_processes(env) -> None:
    svc, rec, rt, bundle, _ = env
    create(svc, bundle)
    svc.start(api.StartRequest(id="c1"))
    svc.exec(api.ExecProcessRequest(id="c1", exec_id="e1", spec=api.Any(value=b'{"args":["x"]}')))
    svc.start(api.StartRequest(id="c1", exec_id="e1"))
    rt.on["ps"] = None
    resp = svc.pids(api.PidsRequest(id="c1"))
    assert [p.pid for p in resp.processes] == [5_000_001]
    svc.containers["c1"].execs["e1"].pid = 5_000_001
    info = svc.pids(api.PidsRequest(id="c1")).processes[0].info
    assert info.type_url == "containerd.runc.v1.ProcessDetails"
    assert runc_options.ProcessDetails.FromString(info.value).exec_id == "e1"


def test_shutdown_only_without_tasks(env) -> None:
    svc, rec, rt, bundle, reactor = env
    stopped = []
    svc.on_shutdown = lambda: stopped.append(True)
    create(svc, bundle)
    svc.shutdown(api.ShutdownRequest(id="c1"))
    reactor.run_once(0)
    assert stopped == []
    svc.shutdown(api.ShutdownRequest(id="c1", now=True))
    reactor.run_once(0)
    assert stopped == [True]


def test_exit_code_of_wait_status() -> None:
    assert exit_code(0) == 0
    assert exit_code(3 << 8) == 3
    assert exit_code(9) == 137  # killed by SIGKILL
    assert exit_code(15) == 143


def test_held_init_exit_is_released_if_an_exec_never_exits(env) -> None:
    svc, rec, rt, bundle, reactor = env
    clock = [0.0]
    reactor.clock = lambda: clock[0]
    pid = create(svc, bundle)
    svc.start(api.StartRequest(id="c1"))
    svc.exec(api.ExecProcessRequest(id="c1", exec_id="stuck", spec=api.Any(value=b'{"args":["x"]}')))
    svc.start(api.StartRequest(id="c1", exec_id="stuck"))
    w = svc.wait(api.WaitRequest(id="c1"))
    svc.on_exit(pid, 0)
    clock[0] = 11.0
    reactor.run_once(0)
    assert w.done and rec.topics[-1] == "/tasks/exit"


def test_an_exec_gets_a_terminal_when_the_request_asks_not_the_spec(env) -> None:
    svc, rec, rt, bundle, _ = env
    create(svc, bundle)
    svc.start(api.StartRequest(id="c1"))
    spec = api.Any(value=b'{"args": ["sh"], "terminal": false, "cwd": "/"}')
    svc.exec(api.ExecProcessRequest(id="c1", exec_id="tty", terminal=True, spec=spec))
    svc.exec(api.ExecProcessRequest(id="c1", exec_id="plain", terminal=False,
                                    spec=api.Any(value=b'{"args": ["sh"], "terminal": true}')))
    execs = svc.containers["c1"].execs
    assert json.loads(execs["tty"].spec) == {"args": ["sh"], "terminal": True, "cwd": "/"}
    assert json.loads(execs["plain"].spec)["terminal"] is False


def test_deleting_an_exec_never_started_reports_status_0(env) -> None:
    svc, rec, rt, bundle, _ = env
    create(svc, bundle)
    svc.start(api.StartRequest(id="c1"))
    svc.exec(api.ExecProcessRequest(id="c1", exec_id="e1", spec=api.Any(value=b'{"args": ["true"]}')))
    assert svc.delete(api.DeleteRequest(id="c1", exec_id="e1")).exit_status == 0
    assert [c for c in rt.calls if c[0] == "exec"] == []


def test_legacy_runc_options_read_as_the_runc_shims_options() -> None:
    from pycontainerd.api.runtime.linux.runctypes import runc_pb2
    from pycontainerd.shim.service import parse_options

    legacy = runc_pb2.RuncOptions(runtime="crun", runtime_root="/run/x", criu_path="/c", systemd_cgroup=True)
    for url in ("containerd.linux.runc.RuncOptions", "type.googleapis.com/containerd.linux.runc.RuncOptions"):
        got = parse_options(api.Any(type_url=url, value=legacy.SerializeToString()))
        assert got == {"binary_name": "crun", "root": "/run/x", "criu_path": "/c", "systemd_cgroup": True}
    assert parse_options(api.Any(type_url="containerd.linux.runc.RuncOptions", value=b"")) == {}
    with pytest.raises(errdefs.InvalidArgument, match="unsupported runtime options"):
        parse_options(api.Any(type_url="containerd.linux.runc.CreateOptions", value=b""))


def test_checkpoint_without_criu_is_the_runtimes_refusal(env, monkeypatch) -> None:
    svc, rec, rt, bundle, _ = env
    create(svc, bundle)
    with pytest.raises(errdefs.FailedPrecondition, match="cannot checkpoint task in created state"):
        svc.checkpoint(api.CheckpointTaskRequest(id="c1"))
    svc.start(api.StartRequest(id="c1"))
    monkeypatch.setenv("PATH", str(os.path.dirname(bundle)))  # no criu there
    rt.fail.add("checkpoint")
    with pytest.raises(errdefs.ContainerdError) as err:
        svc.checkpoint(api.CheckpointTaskRequest(id="c1"))
    assert err.value.code == "UNKNOWN"
    assert str(err.value).startswith("runc did not terminate successfully: exit status 1: checkpoint failed on purpose")
    assert not os.path.exists(os.path.join(bundle, "criu-work"))


def test_a_runtime_that_cannot_be_run_reads_as_go_says(tmp_path) -> None:
    from pycontainerd.shim.runc import Runc, RuncError

    with pytest.raises(RuncError, match=r'^OCI runtime start failed: exec: "no-runc": executable file not found in \$PATH$'):
        Runc(binary="no-runc", root=str(tmp_path)).start("c1")
    missing = str(tmp_path / "no-runc")
    with pytest.raises(RuncError, match=f"^OCI runtime start failed: fork/exec {missing}: no such file or directory$"):
        Runc(binary=missing, root=str(tmp_path)).start("c1")
    log = tmp_path / "log.json"  # never written: containerd says it could not read it, then why
    with pytest.raises(RuncError, match=re.escape(
            f"OCI runtime create failed: unable to retrieve OCI runtime error (open {log}: no such file or directory): "
            'exec: "no-runc": executable file not found in $PATH')):
        Runc(binary="no-runc", root=str(tmp_path), log=str(log)).create("c1", str(tmp_path), str(tmp_path / "pid"))
