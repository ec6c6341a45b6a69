"""Wire compatibility of the shim: Debian's containerd 1.6.20 runs ``pycontainerd-shim``
as a runtime v2 shim (``ctr run --runtime <absolute path>``), driven by Debian's ``ctr``.

This exercises our ttrpc server against containerd's Go ttrpc client, the binary contract
(``start``/``delete``, ``TTRPC_ADDRESS``, options on stdin, the ``address`` file), events
forwarded to containerd's own ttrpc endpoint, and the cgroup metrics ``ctr`` decodes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import pytest

from pycontainerd import mount

pytestmark = [pytest.mark.interop, pytest.mark.root]


@pytest.fixture
def rootfs(tmp_path):
    root = tmp_path / "rootfs"
    (root / "bin").mkdir(parents=True)
    shutil.copy2("/bin/busybox", root / "bin" / "busybox")
    for a in ("sh", "echo", "sleep", "cat", "true"):
        os.symlink("busybox", root / "bin" / a)
    for d in ("proc", "dev", "sys", "tmp", "etc"):
        (root / d).mkdir()
    return str(root)


@pytest.fixture
def ctr(containerd, ctr_bin):
    base = str(containerd.base)

    def run(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        p = subprocess.run([ctr_bin, "--address", containerd.address, "--connect-timeout", "5s", *args],
                           capture_output=True, text=True, timeout=timeout)
        if check:
            assert p.returncode == 0, p.stderr
        return p

    yield run
    # clean up whatever a failing test left: tasks, shims, runc state, mounts
    for line in run("task", "ls", "-q", check=False).stdout.split():
        run("task", "kill", "-s", "SIGKILL", line, check=False)
        time.sleep(0.2)
        run("task", "rm", "-f", line, check=False)
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if os.readlink(f"/proc/{d}/cwd").startswith(base):
                    os.kill(int(d), signal.SIGKILL)
            except OSError:
                pass
    with open("/proc/self/mountinfo") as f:
        for mp in reversed([line.split()[4] for line in f if line.split()[4].startswith(base)]):
            try:
                mount.unmount(mp, detach=True)
            except OSError:
                pass


def shim() -> str:
    path = shutil.which("pycontainerd-shim")
    assert path, "pycontainerd-shim is not installed (pip install -e .)"
    return path


def test_ctr_run_rm_echo(ctr, rootfs) -> None:
    p = ctr("run", "--rm", "--runtime", shim(), "--rootfs", rootfs, "hello", "/bin/echo", "hello from our shim")
    assert p.stdout == "hello from our shim\n"
    assert ctr("task", "ls", "-q").stdout.strip() == ""


def test_ctr_detached_task_lifecycle(ctr, rootfs, containerd) -> None:
    ctr("run", "-d", "--runtime", shim(), "--rootfs", rootfs, "sl", "/bin/sleep", "100")
    listing = ctr("task", "ls").stdout.splitlines()
    assert listing[1].split()[0] == "sl" and listing[1].split()[2] == "RUNNING"
    pid = int(listing[1].split()[1])
    assert ctr("task", "ps", "sl").stdout.split()[2] == str(pid)
    assert ctr("task", "exec", "--exec-id", "x1", "sl", "/bin/echo", "exec-ok").stdout == "exec-ok\n"
    ctr("task", "pause", "sl")
    assert ctr("task", "ls").stdout.splitlines()[1].split()[2] == "PAUSED"
    ctr("task", "resume", "sl")
    metrics = ctr("task", "metrics", "sl").stdout
    assert "memory.usage_in_bytes" in metrics or "memory.usage" in metrics
    ctr("task", "kill", "-s", "SIGKILL", "sl")
    for _ in range(100):
        if ctr("task", "ls").stdout.splitlines()[1].split()[2] == "STOPPED":
            break
        time.sleep(0.1)
    rm = ctr("task", "rm", "sl")
    assert "137" in rm.stderr  # ctr: "task sl exit with non-zero exit code 137"
    ctr("container", "rm", "sl")
    state = os.path.join(str(containerd.base), "state", "io.containerd.runtime.v2.task", "default")
    assert not os.path.exists(os.path.join(state, "sl"))


async def test_our_task_manager_runs_containerds_runc_shim() -> None:
    """The other direction: pycontainerd's TaskManager drives Debian's containerd-shim-runc-v2
    (our asyncio ttrpc client against Go's ttrpc server, our events endpoint receiving its events)."""
    from pycontainerd.api.runtime.runc.options import oci_pb2
    from pycontainerd.runtime.task import TaskManager
    from tests.integration.test_shim_runc import Env

    go_shim = shutil.which("containerd-shim-runc-v2")
    assert go_shim, "Debian's containerd-shim-runc-v2 is not installed (package containerd)"
    base = f"/tmp/pcd-go-{os.getpid()}-{os.urandom(3).hex()}"
    os.makedirs(base)
    env = Env(base)
    await env.events.server.start(env.address + ".ttrpc")
    tm = TaskManager(env.state, address=env.address, shim_command=[go_shim], log_sink=lambda data: None)
    env.managers.append(tm)
    opts = oci_pb2.Options(root=f"{env.state}/runc")
    try:
        log = f"{base}/go.log"
        # as containerd's cio.LogFile does: the same URI for both (containerd 1.6's shim
        # panics on a file:// stdout with an empty stderr; ours accepts it)
        task = await env.create(tm, "go1", ["sh", "-c", "echo from-go-shim; exit 5"], stdout=f"file://{log}",
                                stderr=f"file://{log}", runtime_options=opts)
        await task.start()
        assert (await task.wait(timeout=30)).exit_status == 5
        assert open(log).read() == "from-go-shim\n"
        await tm.delete_task("default", "go1")
        await env.events.wait_for("/tasks/delete", "go1")
        assert env.events.topics("go1") == ["/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"]
        task = await env.create(tm, "go2", ["sleep", "100"], runtime_options=opts)
        await task.start()
        assert [p.pid for p in await task.pids()] == [task.pid]
        await task.kill(signal.SIGKILL)
        assert (await task.wait(timeout=30)).exit_status == 137
        await tm.delete_task("default", "go2")
        assert env.mountpoints() == []
    finally:
        await env.cleanup()
