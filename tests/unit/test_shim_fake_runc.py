"""The real shim binary and the daemon's TaskManager, with a fake runc (no root).

Covers the binary contract (``start`` prints an address, the shim detaches, ``delete``
cleans up), ttrpc between an asyncio client and the thread-free shim, real reaping
(the fake runc's processes are reparented to the shim, a subreaper), stdio through a
fifo and a log file, the events a shim forwards to ``<address>.ttrpc`` and their order,
and the dead-shim / daemon-restart paths."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import stat

import pytest
from google.protobuf import any_pb2

from pycontainerd import errdefs
from pycontainerd.api.events import task_pb2 as events
from pycontainerd.api.runtime.runc.options import oci_pb2 as runc_options
from pycontainerd.api.services.ttrpc.events.v1 import events_pb2
from pycontainerd.runtime.task import TaskManager
from pycontainerd.ttrpc import aio
from tests.support import fake_runc

EVENT_TYPES = {t: getattr(events, n) for t, n in [
    ("/tasks/create", "TaskCreate"), ("/tasks/start", "TaskStart"), ("/tasks/exit", "TaskExit"),
    ("/tasks/delete", "TaskDelete"), ("/tasks/exec-added", "TaskExecAdded"),
    ("/tasks/exec-started", "TaskExecStarted"), ("/tasks/paused", "TaskPaused"),
    ("/tasks/resumed", "TaskResumed"), ("/tasks/oom", "TaskOOM")]}


class Events:
    """The daemon's ttrpc events endpoint, as the lead will build it (enough for tests)."""

    def __init__(self) -> None:
        self.got: list[tuple[str, str, object]] = []
        self.changed = asyncio.Event()
        self.server = aio.Server()
        self.server.register("containerd.services.events.ttrpc.v1.Events", {"Forward": self.forward})

    async def forward(self, payload: bytes, ctx) -> bytes:
        env = events_pb2.ForwardRequest.FromString(payload).envelope
        assert env.event.type_url == "containerd.events." + EVENT_TYPES[env.topic].DESCRIPTOR.name
        self.got.append((env.namespace, env.topic, EVENT_TYPES[env.topic].FromString(env.event.value)))
        self.changed.set()
        return b""

    def topics(self, container: str | None = None) -> list[str]:
        return [t for _, t, ev in self.got if container is None or ev.container_id == container]

    async def wait_for(self, topic: str, container: str, count: int = 1, timeout: float = 10) -> None:
        async def until() -> None:
            while self.topics(container).count(topic) < count:
                self.changed.clear()
                await self.changed.wait()
        await asyncio.wait_for(until(), timeout)


class Sink:
    """The in-process event exchange the manager publishes dead-shim events on."""

    def __init__(self) -> None:
        self.got: list[tuple[str, str, object]] = []

    def publish(self, topic, event, namespace=None):
        self.got.append((namespace, topic, event))


@pytest.fixture
def state():
    d = f"/tmp/pcd-shim-{os.getpid()}-{os.urandom(3).hex()}"
    os.makedirs(d)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def runc_bin(state):
    os.makedirs(f"{state}/bin")
    return fake_runc.install(f"{state}/bin")


@pytest.fixture
async def daemon(state, runc_bin):
    ev = Events()
    address = f"{state}/d.sock"
    await ev.server.start(address + ".ttrpc")
    sink = Sink()
    tm = TaskManager(f"{state}/run", address=address, root=f"{state}/root", events=sink)
    managers = [tm]
    yield tm, ev, sink, managers
    for m in managers:
        for t in list(m._tasks.values()):
            shim_pid = None
            try:
                shim_pid = (await t.shim.call("Connect", _connect_req(t.id), _connect_resp(), timeout=2)).shim_pid
                await t.kill(9, all=True)
            except errdefs.ContainerdError:
                pass
            await m.close()
            if shim_pid:
                _kill(shim_pid)
        await m.close()
    _kill_strays(state)
    await ev.server.close()


def _connect_req(id):
    from pycontainerd.api.runtime.task.v2 import shim_pb2

    return shim_pb2.ConnectRequest(id=id)


def _connect_resp():
    from pycontainerd.api.runtime.task.v2 import shim_pb2

    return shim_pb2.ConnectResponse


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _kill_strays(state: str) -> None:
    """Any process still running from this test's state dir (shims, fake containers)."""
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read()
            cwd = os.readlink(f"/proc/{d}/cwd")
        except OSError:
            continue
        if state.encode() in cmd or cwd.startswith(state):
            _kill(int(d))


def spec(args, pid_ns=True) -> bytes:
    ns = [{"type": "pid"}, {"type": "mount"}] if pid_ns else [{"type": "mount"}]
    return json.dumps({"ociVersion": "1.0.2", "process": {"args": args, "cwd": "/"},
                       "root": {"path": "rootfs"}, "linux": {"namespaces": ns}}).encode()


def options(runc_bin: str) -> runc_options.Options:
    return runc_options.Options(binary_name=runc_bin)


def console_script() -> list[str]:
    """The installed ``pycontainerd-shim`` (with site): ``start`` execs a lean interpreter."""
    exe = shutil.which("pycontainerd-shim")
    assert exe, "pycontainerd-shim is not installed (pip install -e .)"
    return [exe]


async def test_run_to_exit_through_a_fifo(daemon, state, runc_bin) -> None:
    tm, ev, sink, _ = daemon
    fifo = f"{state}/c1-stdout"
    os.mkfifo(fifo)
    task = await tm.create("default", "c1", spec(["sh", "-c", "echo hello; exit 3"]), [], stdout=fifo,
                           runtime_options=options(runc_bin))
    bundle = task.bundle.path
    assert open(f"{bundle}/address").read().startswith(f"unix://{state}/run/s/")
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        assert (await task.state()).status == "created"
        pid = await task.start()
        assert pid == task.pid > 0
        exit = await task.wait(timeout=10)
        assert exit.exit_status == 3 and exit.exited_at_ns > 0
        data = b""
        for _ in range(100):
            try:
                data += os.read(reader, 100)
            except BlockingIOError:
                pass
            if b"\n" in data:
                break
            await asyncio.sleep(0.02)
        assert data == b"hello\n"
    finally:
        os.close(reader)
    await ev.wait_for("/tasks/exit", "c1")
    st = await task.state()
    assert st.status == "stopped" and st.exit_status == 3
    deleted = await tm.delete_task("default", "c1")
    assert deleted.exit_status == 3 and deleted.pid == pid
    await ev.wait_for("/tasks/delete", "c1")
    assert ev.topics("c1") == ["/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"]
    assert not os.path.exists(bundle)
    with pytest.raises(errdefs.NotFound):
        tm.get("default", "c1")


async def test_kill_exec_pause_and_log_file(daemon, state, runc_bin) -> None:
    tm, ev, sink, _ = daemon
    log = f"{state}/c2.log"
    task = await tm.create("default", "c2", spec(["sleep", "100"]), [], stdout=f"file://{log}",
                           runtime_options=options(runc_bin))
    await task.start()
    await task.exec("e1", {"args": ["sh", "-c", "echo from-exec"], "cwd": "/"}, stdout=f"file://{log}")
    with pytest.raises(errdefs.AlreadyExists):
        await task.exec("e1", {"args": ["true"]})
    epid = await task.start("e1")
    assert (await task.wait("e1", timeout=10)).exit_status == 0
    assert (await task.delete("e1")).pid == epid
    assert open(log).read() == "from-exec\n"
    pids = await task.pids()
    assert [p.pid for p in pids] == [task.pid]
    await task.pause()
    assert (await task.state()).status == "paused"
    await task.resume()
    await task.update({"cpu": {"shares": 512}})
    with pytest.raises(errdefs.FailedPrecondition):
        await tm.delete_task("default", "c2")
    await task.kill(signal.SIGKILL)
    assert (await task.wait(timeout=10)).exit_status == 137
    await tm.delete_task("default", "c2")
    await ev.wait_for("/tasks/delete", "c2")
    assert ev.topics("c2") == ["/tasks/create", "/tasks/start", "/tasks/exec-added", "/tasks/exec-started",
                               "/tasks/exit", "/tasks/paused", "/tasks/resumed", "/tasks/exit", "/tasks/delete"]


async def test_console_script_start_execs_a_lean_shim(daemon, state, runc_bin) -> None:
    tm, ev, sink, managers = daemon
    tm2 = TaskManager(f"{state}/run", address=f"{state}/d.sock", shim_command=console_script())
    managers.append(tm2)
    task = await tm2.create("default", "cs", spec(["sh", "-c", "exit 4"]), [], runtime_options=options(runc_bin))
    from pycontainerd.api.runtime.task.v2 import shim_pb2

    info = await task.shim.call("Connect", shim_pb2.ConnectRequest(id="cs"), shim_pb2.ConnectResponse)
    with open(f"/proc/{info.shim_pid}/cmdline", "rb") as f:
        argv = f.read().split(b"\0")
    assert argv[1:3] == [b"-S", b"-P"]  # the long-lived shim runs without site
    assert os.getsid(info.shim_pid) == info.shim_pid  # its own session
    await task.start()
    assert (await task.wait(timeout=10)).exit_status == 4
    await tm2.delete_task("default", "cs")


async def test_lean_start_forks_the_shim_in_its_own_session(daemon, runc_bin) -> None:
    tm, ev, sink, _ = daemon
    task = await tm.create("default", "lean", spec(["true"]), [], runtime_options=options(runc_bin))
    from pycontainerd.api.runtime.task.v2 import shim_pb2

    info = await task.shim.call("Connect", shim_pb2.ConnectRequest(id="lean"), shim_pb2.ConnectResponse)
    assert os.getsid(info.shim_pid) == info.shim_pid != os.getsid(0)
    with open(f"/proc/{info.shim_pid}/status") as f:
        ppid = int(next(line for line in f if line.startswith("PPid:")).split()[1])
    assert ppid != os.getpid()  # not our child: `start` exited, the shim was reparented
    await tm.delete_task("default", "lean")


async def test_early_exit_never_precedes_start(daemon, runc_bin) -> None:
    tm, ev, sink, _ = daemon
    for i in range(5):
        task = await tm.create("default", f"q{i}", spec(["true"]), [], runtime_options=options(runc_bin))
        await task.start()
        assert (await task.wait(timeout=10)).exit_status == 0
        await ev.wait_for("/tasks/exit", f"q{i}")
        assert ev.topics(f"q{i}") == ["/tasks/create", "/tasks/start", "/tasks/exit"]
        await tm.delete_task("default", f"q{i}")


async def test_create_failure_leaves_nothing(daemon, state, runc_bin, monkeypatch) -> None:
    tm, ev, sink, _ = daemon
    monkeypatch.setenv("FAKE_RUNC_FAIL", "create")
    with pytest.raises(errdefs.ContainerdError, match="create failed on purpose"):
        await tm.create("default", "bad", spec(["true"]), [], runtime_options=options(runc_bin))
    assert not os.path.exists(f"{state}/run/io.containerd.runtime.v2.task/default/bad")
    assert os.listdir(f"{state}/run/s") == []
    assert tm.list("default") == []


async def test_failed_create_leaves_a_shared_shim_serving(daemon, state, runc_bin) -> None:
    """Two tasks of one group share a shim; the second's Create fails (its rootfs cannot be
    mounted): the shim, with its pid, and the first task carry on (issue 13)."""
    from pycontainerd.api.runtime.task.v2 import shim_pb2
    from pycontainerd.mount import Mount

    tm, ev, sink, _ = daemon

    def grouped(args):
        data = json.loads(spec(args))
        data["annotations"] = {"io.containerd.runc.v2.group": "g1"}
        return json.dumps(data).encode()

    first = await tm.create("default", "first", grouped(["sleep", "100"]), [], runtime_options=options(runc_bin))
    await first.start()
    connect = shim_pb2.ConnectRequest(id="first")
    shim_pid = (await first.shim.call("Connect", connect, shim_pb2.ConnectResponse)).shim_pid
    bad = [Mount(type="bind", source=f"{state}/no-such-dir", target="", options=["rbind"])]
    with pytest.raises(errdefs.InvalidArgument, match="failed to create shim task: failed to mount rootfs"):
        await tm.create("default", "second", grouped(["true"]), bad, runtime_options=options(runc_bin))
    await asyncio.sleep(0.3)  # a shim that was told to go would be gone by now
    info = await first.shim.call("Connect", connect, shim_pb2.ConnectResponse)
    assert info.shim_pid == shim_pid and (await first.state()).status == "running"
    assert sink.got == [] and "/tasks/exit" not in ev.topics("first")
    assert not os.path.exists(f"{state}/run/io.containerd.runtime.v2.task/default/second")
    assert [t.id for t in tm.list("default")] == ["first"]
    # the shim still starts a task of its group, and goes with its last one
    third = await tm.create("default", "third", grouped(["sh", "-c", "exit 5"]), [], runtime_options=options(runc_bin))
    await third.start()
    assert (await third.wait(timeout=10)).exit_status == 5
    await tm.delete_task("default", "third")
    await first.kill(signal.SIGKILL)
    await first.wait(timeout=10)
    await tm.delete_task("default", "first")
    for _ in range(100):
        if not os.path.exists(f"/proc/{shim_pid}"):
            break
        await asyncio.sleep(0.05)
    assert not os.path.exists(f"/proc/{shim_pid}")


async def test_killed_shim_is_cleaned_up(daemon, state, runc_bin) -> None:
    tm, ev, sink, _ = daemon
    task = await tm.create("default", "c3", spec(["sleep", "100"]), [], runtime_options=options(runc_bin))
    await task.start()
    from pycontainerd.api.runtime.task.v2 import shim_pb2

    info = await task.shim.call("Connect", shim_pb2.ConnectRequest(id="c3"), shim_pb2.ConnectResponse)
    os.kill(info.shim_pid, signal.SIGKILL)
    for _ in range(200):
        if sink.got:
            break
        await asyncio.sleep(0.05)
    await tm.wait_background()
    assert [(ns, t) for ns, t, _ in sink.got] == [("default", "/tasks/exit"), ("default", "/tasks/delete")]
    assert sink.got[0][2].exit_status == 137 and sink.got[0][2].pid == task.pid
    assert not os.path.exists(task.bundle.path)
    assert tm.list("default") == []
    # `shim delete` ran the (fake) runtime's delete --force: the container is gone
    assert not os.path.exists(f"{state}/run/runc/default/c3")
    with pytest.raises(ProcessLookupError):
        for _ in range(100):
            os.kill(task.pid, 0)
            with open(f"/proc/{task.pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    raise ProcessLookupError
            await asyncio.sleep(0.05)


async def test_daemon_restart_reconnects(daemon, state, runc_bin) -> None:
    tm, ev, sink, managers = daemon
    task = await tm.create("default", "c4", spec(["sleep", "100"]), [], runtime_options=options(runc_bin))
    await task.start()
    dead = await tm.create("default", "c5", spec(["sleep", "100"]), [], runtime_options=options(runc_bin))
    await dead.start()
    from pycontainerd.api.runtime.task.v2 import shim_pb2

    dead_shim = (await dead.shim.call("Connect", shim_pb2.ConnectRequest(id="c5"), shim_pb2.ConnectResponse)).shim_pid
    await tm.close()  # the daemon goes away; its shims stay
    os.kill(dead_shim, signal.SIGKILL)
    tm2 = TaskManager(f"{state}/run", address=f"{state}/d.sock", root=f"{state}/root", events=sink)
    managers.append(tm2)
    result = await tm2.load_existing()
    assert [t.id for t in result.loaded] == ["c4"]
    assert [(c.id, c.exit.exit_status) for c in result.cleaned] == [("c5", 137)]
    assert "gone" in result.cleaned[0].reason
    again = tm2.get("default", "c4")
    assert again.pid == task.pid and (await again.state()).status == "running"
    await again.kill(signal.SIGTERM)
    assert (await again.wait(timeout=10)).exit_status == 143
    await tm2.delete_task("default", "c4")
    assert Bundle_list(state) == []


def Bundle_list(state):
    from pycontainerd.runtime.bundle import Bundle

    return Bundle.list(f"{state}/run")


def test_shim_delete_action_prints_a_delete_response(state, runc_bin) -> None:
    import subprocess

    from pycontainerd.api.runtime.task.v2 import shim_pb2

    bundle = f"{state}/run/io.containerd.runtime.v2.task/default/gone"
    os.makedirs(bundle)
    with open(f"{bundle}/init.pid", "w") as f:
        f.write("12345")
    with open(f"{bundle}/options.json", "w") as f:
        json.dump({"binary_name": runc_bin}, f)
    out = subprocess.run([*console_script(), "-namespace", "default", "-address", f"{state}/d.sock",
                          "-publish-binary", "", "-id", "gone", "delete"], cwd=bundle, capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr
    resp = shim_pb2.DeleteResponse.FromString(out.stdout)
    assert (resp.pid, resp.exit_status) == (12345, 137) and resp.exited_at.seconds > 0
    assert out.stderr == b""  # the runtime had nothing to delete: not an error


def test_shim_start_requires_namespace_and_long_state_dirs_fail_cleanly(tmp_path) -> None:
    import subprocess

    out = subprocess.run([*console_script(), "-id", "x", "start"], capture_output=True, timeout=30)
    assert out.returncode != 0 and b"namespace" in out.stderr
    deep = tmp_path / ("d" * 90) / "io.containerd.runtime.v2.task" / "default" / "x"
    deep.mkdir(parents=True)
    out = subprocess.run([*console_script(), "-namespace", "default", "-address", "/x.sock", "-id", "x",
                          "start"], cwd=deep, capture_output=True, timeout=30)
    assert out.returncode == 1 and b"too long for a unix socket" in out.stderr


def test_socket_address_fits() -> None:
    from pycontainerd.shim.main import socket_address

    a = socket_address("/run/pycontainerd/io.containerd.runtime.v2.task/default/c", "/run/p.sock", "default", "c")
    assert a.startswith("unix:///run/pycontainerd/s/") and len(a) == len("unix:///run/pycontainerd/s/") + 64
    long_state = "/tmp/" + "x" * 60
    b = socket_address(f"{long_state}/io.containerd.runtime.v2.task/default/c", "/a", "default", "c")
    assert len(b[len("unix://"):]) <= 107


def test_fifo_is_a_fifo(state) -> None:
    os.mkfifo(f"{state}/f")
    assert stat.S_ISFIFO(os.stat(f"{state}/f").st_mode)


def test_options_any_round_trip(runc_bin) -> None:
    from pycontainerd.runtime.task import pack_options

    a = pack_options(options(runc_bin))
    assert isinstance(a, any_pb2.Any) and a.type_url == "containerd.runc.v1.Options"
