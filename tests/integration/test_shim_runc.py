"""The shim with real runc 1.1: a busybox rootfs bind-mounted by the shim, a hand-written
OCI spec, the daemon-side TaskManager as the client, events forwarded to a ttrpc endpoint.

Every test cleans up in ``finally`` (fixture teardown): ``runc delete --force`` of every
container, SIGKILL of every shim, unmount of everything under the temp state dir, and the
state dir removed — also when a test fails."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import pytest

from pycontainerd import errdefs, mount
from pycontainerd.api.cgroups.v1 import metrics_pb2 as v1_metrics
from pycontainerd.api.cgroups.v2 import metrics_pb2 as v2_metrics
from pycontainerd.api.events import task_pb2 as events
from pycontainerd.api.runtime.task.v2 import shim_pb2
from pycontainerd.api.services.ttrpc.events.v1 import events_pb2
from pycontainerd.runtime.bundle import Bundle
from pycontainerd.runtime.task import TaskManager
from pycontainerd.ttrpc import aio

pytestmark = [pytest.mark.root, pytest.mark.integration]

APPLETS = ("sh", "true", "sleep", "echo", "cat", "stty", "tty", "head", "ls")
RUNC = shutil.which("runc") or "runc"


def busybox_rootfs(path: str) -> str:
    os.makedirs(f"{path}/bin")
    shutil.copy2("/bin/busybox", f"{path}/bin/busybox")
    for a in APPLETS:
        os.symlink("busybox", f"{path}/bin/{a}")
    for d in ("proc", "dev", "sys", "tmp", "etc"):
        os.makedirs(f"{path}/{d}")
    return path


def oci_spec(id: str, args: list[str], terminal: bool = False, memory_limit: int | None = None) -> bytes:
    """A minimal spec runc 1.1 accepts (another engineer builds containerd's defaults)."""
    caps = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_KILL", "CAP_SETGID", "CAP_SETUID",
            "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE"]
    spec = {
        "ociVersion": "1.0.2",
        "process": {"terminal": terminal, "user": {"uid": 0, "gid": 0}, "args": args, "cwd": "/",
                    "env": ["PATH=/bin", "TERM=xterm"], "noNewPrivileges": True,
                    "capabilities": {k: caps for k in ("bounding", "effective", "permitted")},
                    "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]},
        "root": {"path": "rootfs", "readonly": False},
        "hostname": id,
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        ],
        "linux": {
            "cgroupsPath": f"/pycontainerd-test/{id}",
            "namespaces": [{"type": t} for t in ("pid", "ipc", "uts", "mount", "network")],
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
        },
    }
    if memory_limit:
        spec["linux"]["resources"]["memory"] = {"limit": memory_limit, "swap": memory_limit}
    return json.dumps(spec).encode()


class Events:
    def __init__(self) -> None:
        self.got: list[tuple[str, object]] = []
        self.changed = asyncio.Event()
        self.server = aio.Server()
        self.server.register("containerd.services.events.ttrpc.v1.Events", {"Forward": self.forward})

    async def forward(self, payload: bytes, ctx) -> bytes:
        env = events_pb2.ForwardRequest.FromString(payload).envelope
        cls = getattr(events, env.event.type_url.rsplit(".", 1)[1])
        self.got.append((env.topic, cls.FromString(env.event.value)))
        self.changed.set()
        return b""

    def topics(self, cid: str) -> list[str]:
        return [t for t, ev in self.got if ev.container_id == cid]

    async def wait_for(self, topic: str, cid: str, timeout: float = 15) -> None:
        async def until() -> None:
            while topic not in self.topics(cid):
                self.changed.clear()
                await self.changed.wait()
        await asyncio.wait_for(until(), timeout)


class Env:
    def __init__(self, base: str) -> None:
        self.base = base
        self.state = f"{base}/state"
        self.address = f"{base}/d.sock"
        self.rootfs = busybox_rootfs(f"{base}/rootfs")
        self.events = Events()
        self.managers: list[TaskManager] = []

    def manager(self) -> TaskManager:
        tm = TaskManager(self.state, address=self.address, root=f"{self.base}/root")
        self.managers.append(tm)
        return tm

    def mounts(self) -> list[mount.Mount]:
        return [mount.Mount("bind", self.rootfs, ("rbind", "rw"))]

    async def create(self, tm: TaskManager, id: str, args: list[str], **kw):
        spec_kw = {k: kw.pop(k) for k in ("memory_limit",) if k in kw}
        return await tm.create("default", id, oci_spec(id, args, terminal=kw.get("terminal", False), **spec_kw),
                               self.mounts(), **kw)

    def mountpoints(self) -> list[str]:
        out = []
        with open("/proc/self/mountinfo") as f:
            for line in f:
                mp = line.split()[4].encode().decode("unicode_escape")
                if mp.startswith(self.base):
                    out.append(mp)
        return out

    def processes(self) -> list[int]:
        """Live (non-zombie) processes started from this env: shims and containers."""
        pids = []
        for d in os.listdir("/proc"):
            if not d.isdigit() or int(d) == os.getpid():
                continue
            try:
                cwd = os.readlink(f"/proc/{d}/cwd")
                with open(f"/proc/{d}/stat") as f:
                    zombie = f.read().rsplit(")", 1)[1].split()[0] == "Z"
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    cmd = f.read()
            except OSError:
                continue
            if not zombie and (cwd.startswith(self.base) or self.base.encode() in cmd):
                pids.append(int(d))
        return pids

    async def settled_processes(self, timeout: float = 10) -> list[int]:
        """:meth:`processes`, after giving exiting shims time to finish."""
        for _ in range(int(timeout / 0.05)):
            pids = self.processes()
            if not pids:
                return []
            await asyncio.sleep(0.05)
        return [(p, open(f"/proc/{p}/cmdline", "rb").read()) for p in pids]

    async def cleanup(self) -> None:
        for tm in self.managers:
            await tm.close()
        for ns, id in Bundle.list(self.state):
            subprocess.run([RUNC, "--root", f"{self.state}/runc/{ns}", "delete", "--force", id],
                           capture_output=True, timeout=30)
        for pid in self.processes():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for mp in sorted(self.mountpoints(), key=len, reverse=True):
            try:
                mount.unmount(mp, detach=True)
            except OSError:
                pass
        await self.events.server.close()
        shutil.rmtree(self.base, ignore_errors=True)
        for hierarchy in os.listdir("/sys/fs/cgroup"):  # the tests' parent cgroup, if now empty
            try:
                os.rmdir(f"/sys/fs/cgroup/{hierarchy}/pycontainerd-test")
            except OSError:
                pass


@pytest.fixture
async def env():
    base = f"/tmp/pcd-it-{os.getpid()}-{os.urandom(3).hex()}"  # short: unix socket paths
    os.makedirs(base)
    e = Env(base)
    await e.events.server.start(e.address + ".ttrpc")
    try:
        yield e
    finally:
        await e.cleanup()
    assert e.mountpoints() == [], "mounts leaked"


async def read_until(fd: int, want: bytes, timeout: float = 10) -> bytes:
    data = b""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while want not in data and loop.time() < deadline:
        try:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            data += chunk
        except BlockingIOError:
            await asyncio.sleep(0.02)
    return data


def shim_pid_of(task) -> int:
    async def get() -> int:
        r = await task.shim.call("Connect", shim_pb2.ConnectRequest(id=task.id), shim_pb2.ConnectResponse)
        return r.shim_pid
    return get()


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def test_echo_hello_to_a_fifo_then_exit_zero(env) -> None:
    tm = env.manager()
    fifo = f"{env.base}/hello.out"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        task = await env.create(tm, "hello", ["echo", "hello"], stdout=fifo)
        assert mount.is_mountpoint(task.bundle.rootfs)
        await task.start()
        exit = await task.wait(timeout=30)
        assert exit.exit_status == 0 and exit.exited_at_ns > 0
        assert await read_until(reader, b"hello\n") == b"hello\n"
    finally:
        os.close(reader)
    await env.events.wait_for("/tasks/exit", "hello")
    deleted = await tm.delete_task("default", "hello")
    assert deleted.exit_status == 0
    await env.events.wait_for("/tasks/delete", "hello")
    assert env.events.topics("hello") == ["/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"]
    assert env.mountpoints() == []
    assert not os.path.exists(task.bundle.path)
    ex = [ev for t, ev in env.events.got if t == "/tasks/exit"][0]
    assert (ex.container_id, ex.id, ex.pid, ex.exit_status) == ("hello", "hello", task.pid, 0)


async def test_sigkill_is_137_and_exec_pause_pids_stats(env, record_property) -> None:
    tm = env.manager()
    log = f"{env.base}/sleeper.log"
    task = await env.create(tm, "sleeper", ["sleep", "100"], stdout=f"file://{log}")
    await task.start()
    shim = await shim_pid_of(task)
    record_property("shim_rss_kib_running_container", rss_kib(shim))
    print(f"\nshim RSS with one running container: {rss_kib(shim)} KiB")
    # exec
    await task.exec("e1", {"args": ["echo", "exec"], "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}},
                    stdout=f"file://{log}")
    await task.start("e1")
    assert (await task.wait("e1", timeout=30)).exit_status == 0
    await task.delete("e1")
    assert open(log).read() == "exec\n"
    # pids
    pids = await task.pids()
    assert [p.pid for p in pids] == [task.pid]
    # pause / resume
    await task.pause()
    assert (await task.state()).status == "paused"
    with open(f"/proc/{task.pid}/status") as f:
        assert any(line.split()[1:2] in (["T"], ["D"], ["S"]) for line in f if line.startswith("State:"))
    await task.resume()
    assert (await task.state()).status == "running"
    # stats: the cgroup metrics containerd's shim returns
    stats = await task.stats()
    if stats.type_url == "io.containerd.cgroups.v1.Metrics":
        m = v1_metrics.Metrics.FromString(stats.value)
        assert m.memory.usage.usage > 0 and m.pids.current >= 1
    else:
        assert stats.type_url == "io.containerd.cgroups.v2.Metrics"
        m = v2_metrics.Metrics.FromString(stats.value)
        assert m.memory.usage > 0
    # update (runc update --resources -)
    await task.update({"pids": {"limit": 100}})
    # SIGKILL → 137
    await task.kill(signal.SIGKILL)
    exit = await task.wait(timeout=30)
    assert exit.exit_status == 137
    with pytest.raises(errdefs.NotFound):
        await task.kill(signal.SIGKILL)
    await tm.delete_task("default", "sleeper")
    await env.events.wait_for("/tasks/delete", "sleeper")
    assert env.events.topics("sleeper") == [
        "/tasks/create", "/tasks/start", "/tasks/exec-added", "/tasks/exec-started", "/tasks/exit",
        "/tasks/paused", "/tasks/resumed", "/tasks/exit", "/tasks/delete"]
    assert await env.settled_processes() == []


async def test_tty_container(env) -> None:
    tm = env.manager()
    out = f"{env.base}/tty.out"
    inp = f"{env.base}/tty.in"
    os.mkfifo(out)
    os.mkfifo(inp)
    reader = os.open(out, os.O_RDONLY | os.O_NONBLOCK)
    try:
        task = await env.create(tm, "tty", ["sh", "-c", "stty size; tty; read line; echo got-$line"],
                                stdin=inp, stdout=out, terminal=True)
        await task.resize_pty(100, 40)
        await task.start()
        data = await read_until(reader, b"/dev/pts/")
        assert b"40 100\r\n" in data and b"/dev/pts/0" in data
        writer = os.open(inp, os.O_WRONLY | os.O_NONBLOCK)
        os.write(writer, b"abc\n")
        os.close(writer)
        data += await read_until(reader, b"got-abc")
        assert b"got-abc\r\n" in data
        assert (await task.wait(timeout=30)).exit_status == 0
    finally:
        os.close(reader)
    await tm.delete_task("default", "tty")


async def test_stdin_pipe_and_close_io(env) -> None:
    tm = env.manager()
    inp, out = f"{env.base}/cat.in", f"{env.base}/cat.out"
    os.mkfifo(inp)
    os.mkfifo(out)
    reader = os.open(out, os.O_RDONLY | os.O_NONBLOCK)
    try:
        task = await env.create(tm, "cat", ["cat"], stdin=inp, stdout=out)
        await task.start()
        w = os.open(inp, os.O_WRONLY)
        os.write(w, b"one\n")
        assert await read_until(reader, b"one\n") == b"one\n"
        os.close(w)  # the client goes away: cat keeps running (stdin stays open) …
        await asyncio.sleep(0.3)
        assert (await task.state()).status == "running"
        await task.close_io()  # … until CloseIO: then cat sees EOF and exits 0
        assert (await task.wait(timeout=30)).exit_status == 0
    finally:
        os.close(reader)
    await tm.delete_task("default", "cat")


async def test_client_killed_shim_survives_and_reconnects(env) -> None:
    script = textwrap.dedent(f"""
        import asyncio, json, sys
        sys.path.insert(0, {os.getcwd()!r})
        from tests.integration.test_shim_runc import oci_spec
        from pycontainerd import mount
        from pycontainerd.runtime.task import TaskManager
        async def main():
            tm = TaskManager({env.state!r}, address={env.address!r})
            t = await tm.create("default", "survivor", oci_spec("survivor", ["sleep", "100"]),
                                [mount.Mount("bind", {env.rootfs!r}, ("rbind", "rw"))])
            await t.start()
            print(json.dumps({{"pid": t.pid}}), flush=True)
            await asyncio.sleep(100)
        asyncio.run(main())
    """)
    client = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        line = await asyncio.wait_for(asyncio.to_thread(client.stdout.readline), 60)
        pid = json.loads(line)["pid"]
    finally:
        client.kill()  # kill -9 of the daemon-side client
        client.wait()
    await asyncio.sleep(0.3)
    os.kill(pid, 0)  # the container still runs
    tm = env.manager()
    result = await tm.load_existing()
    assert [t.id for t in result.loaded] == ["survivor"] and result.cleaned == []
    task = tm.get("default", "survivor")
    assert task.pid == pid and (await task.state()).status == "running"
    await task.kill(signal.SIGKILL)  # pid 1 of a pid namespace ignores an unhandled SIGTERM
    assert (await task.wait(timeout=30)).exit_status == 137
    await tm.delete_task("default", "survivor")
    assert await env.settled_processes() == [] and env.mountpoints() == []


async def test_killed_shim_is_cleaned_up_on_load(env) -> None:
    tm = env.manager()
    task = await env.create(tm, "orphan", ["sleep", "100"])
    await task.start()
    shim = await shim_pid_of(task)
    await tm.close()  # as if the daemon were down …
    os.kill(shim, signal.SIGKILL)  # … and the shim got killed
    await asyncio.sleep(0.2)
    tm2 = env.manager()
    result = await tm2.load_existing()
    assert result.loaded == []
    assert [(c.id, c.exit.exit_status) for c in result.cleaned] == [("orphan", 137)]
    assert env.mountpoints() == [], "rootfs left mounted"
    assert await env.settled_processes() == [], "container or runc left running"
    assert Bundle.list(env.state) == []
    r = subprocess.run([RUNC, "--root", f"{env.state}/runc/default", "list", "-q"], capture_output=True, text=True)
    assert r.stdout.strip() == ""


async def test_killed_shim_while_connected(env) -> None:
    class Sink:
        got: list = []

        def publish(self, topic, event, namespace=None):
            self.got.append((topic, event))

    tm = env.manager()
    tm.events = Sink()
    task = await env.create(tm, "victim", ["sleep", "100"])
    await task.start()
    os.kill(await shim_pid_of(task), signal.SIGKILL)
    for _ in range(200):
        if len(Sink.got) >= 2:
            break
        await asyncio.sleep(0.05)
    await tm.wait_background()
    assert [t for t, _ in Sink.got] == ["/tasks/exit", "/tasks/delete"]
    assert Sink.got[0][1].exit_status == 137
    assert env.mountpoints() == [] and await env.settled_processes() == []


async def test_oom_event(env) -> None:
    tm = env.manager()
    # 8 MiB limit; the shell builds a ~64 MiB string
    task = await env.create(tm, "oom", ["sh", "-c", "x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo ${#x}"],
                            memory_limit=8 << 20)
    await task.start()
    exit = await task.wait(timeout=60)
    assert exit.exit_status == 137
    await env.events.wait_for("/tasks/exit", "oom")
    assert "/tasks/oom" in env.events.topics("oom")
    await tm.delete_task("default", "oom")


async def test_oom_watch_is_armed_between_create_and_start(env) -> None:
    """C15: the shim watches for OOM kills from `runc create` on, so a kill that comes before
    the user's process could even be watched after `runc start` is still reported, and
    reported before the exit. The kill is made before Start: a host process joins the
    container's memory cgroup and overruns its limit."""
    from pycontainerd.shim.cgroups import Cgroup

    tm = env.manager()
    task = await env.create(tm, "oomc", ["true"], memory_limit=16 << 20)
    cg = Cgroup.for_pid(task.pid)
    memory = cg.paths["memory"] if cg.version == 1 else cg.path
    hog = subprocess.run(["/bin/busybox", "sh", "-c",
                          f"echo 1000 > /proc/self/oom_score_adj && echo $$ > {memory}/cgroup.procs && "
                          "exec /bin/busybox dd if=/dev/zero of=/dev/null bs=64M count=1"],
                         capture_output=True, timeout=60)
    assert hog.returncode == -signal.SIGKILL, hog
    await env.events.wait_for("/tasks/oom", "oomc")
    await task.start()
    exit = await task.wait(timeout=60)
    assert exit.exit_status == 0  # the container's own process was not the one killed
    await env.events.wait_for("/tasks/exit", "oomc")
    topics = env.events.topics("oomc")
    assert topics.index("/tasks/oom") < topics.index("/tasks/start") < topics.index("/tasks/exit"), topics
    await tm.delete_task("default", "oomc")


async def test_containerd_default_spec_through_the_shim(env) -> None:
    from pycontainerd import oci
    from pycontainerd.oci.opts import (
        with_cgroup,
        with_default_path_env,
        with_process_args,
    )

    spec = oci.marshal(oci.generate("default", "dflt", with_process_args("echo", "default-spec"),
                                    with_default_path_env, with_cgroup("/pycontainerd-test/dflt")))
    tm = env.manager()
    log = f"{env.base}/dflt.log"
    task = await tm.create("default", "dflt", spec, env.mounts(), stdout=f"file://{log}")
    await task.start()
    assert (await task.wait(timeout=30)).exit_status == 0
    assert open(log).read() == "default-spec\n"
    await tm.delete_task("default", "dflt")
