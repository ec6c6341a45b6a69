"""``pyctr tasks`` (alias ``t``): start, ls, attach, exec, kill, ps, pause, resume,
metrics, rm."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from typing import Any

import click
from google.protobuf.message import Message

from ..client import AsyncClient, cio
from ..client.containers import STOP_SIGNAL_LABEL
from ..client.tasks import TaskMetrics
from ..errdefs import FailedPrecondition, NotFound
from .app import CONTEXT_SETTINGS, each, format_option, pass_client, quiet_option
from .attach import foreground, raw_terminal, stdio_creator
from .output import dumps, echo_listing, go_time, table
from .run import run_task


@click.group("tasks", context_settings=CONTEXT_SETTINGS)
def tasks() -> None:
    """Manage tasks: the running side of containers. Alias: t.

    \b
    Examples:
      pyctr tasks start -d web
      pyctr tasks exec web ls /
      pyctr tasks kill -s KILL web && pyctr tasks rm web
    """


@tasks.command("start")
@click.option("-d", "--detach", is_flag=True, help="Start and return.")
@click.option("--null-io", is_flag=True, help="Send the output nowhere.")
@click.option("--log-uri", metavar="URI", help="Send the output to file:///path, binary:///path or a path.")
@click.option("--fifo-dir", type=click.Path(file_okay=False), help="Where to make the stdio fifos.")
@click.argument("container_id", metavar="CONTAINER")
@pass_client
async def start(client: AsyncClient, detach: bool, null_io: bool, log_uri: str | None, fifo_dir: str | None,
                container_id: str) -> int:
    """Start a container's task; exits with its exit code (unless -d)."""
    container = await client.load_container(container_id)
    spec = await container.spec()
    tty = bool((spec.get("process") or {}).get("terminal"))
    if detach:
        creator = stdio_creator(terminal=tty, null_io=null_io or not (log_uri or fifo_dir), log_uri=log_uri,
                                fifo_dir=fifo_dir)
        task = await container.new_task(stdio=creator)
        try:
            await task.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await task.delete()
            raise
        return 0
    return await run_task(container, tty=tty, null_io=null_io, log_uri=log_uri, fifo_dir=fifo_dir)


@tasks.command("ls")
@quiet_option
@format_option
@pass_client
async def ls(client: AsyncClient, quiet: bool, fmt: str) -> None:
    """List tasks."""
    ts = sorted(await client.list_tasks(), key=lambda t: t.container_id)
    rows = [[t.container_id, t.pid, t.status.upper()] for t in ts]
    echo_listing(fmt, quiet, ["TASK", "PID", "STATUS"], rows, ts, [t.container_id for t in ts])


@tasks.command("attach")
@click.argument("container_id", metavar="CONTAINER")
@pass_client
async def attach(client: AsyncClient, container_id: str) -> int:
    """Attach to a running task's stdio (when it was started with fifos); exits with its
    exit code."""
    container = await client.load_container(container_id)
    import sys

    status = await (await container.task()).status()
    tty = status.terminal
    task = await container.task(attach=cio.new_attach(sys.stdin.buffer, sys.stdout.buffer,
                                                      None if tty else sys.stderr.buffer))
    try:
        with raw_terminal(tty):
            async with foreground(task, terminal=tty):
                result = await task.wait()
        if task.io is not None:
            task.io.cancel()
            await asyncio.wait_for(task.io.wait(), 5)
    finally:
        if task.io is not None:
            await task.io.close()
    return result.code


@tasks.command("exec", context_settings={"allow_interspersed_args": False})
@click.option("--exec-id", help="Id of the new process (default: a random one).")
@click.option("-d", "--detach", is_flag=True, help="Start and return.")
@click.option("-t", "--tty", is_flag=True, help="Allocate a terminal.")
@click.option("--cwd", metavar="DIR", help="Working directory.")
@click.option("-e", "--env", multiple=True, metavar="KEY=VALUE", help="Add an environment variable.")
@click.option("--null-io", is_flag=True)
@click.option("--log-uri", metavar="URI")
@click.option("--fifo-dir", type=click.Path(file_okay=False))
@click.argument("container_id", metavar="CONTAINER")
@click.argument("args", nargs=-1, required=True, type=click.UNPROCESSED)
@pass_client
async def exec_(client: AsyncClient, exec_id: str | None, detach: bool, tty: bool, cwd: str | None,
                env: tuple[str, ...], null_io: bool, log_uri: str | None, fifo_dir: str | None,
                container_id: str, args: tuple[str, ...]) -> int:
    """Run another process in a running task; exits with its exit code (unless -d).

    \b
    Example:
      pyctr tasks exec --exec-id sh1 -t web sh
    """
    container = await client.load_container(container_id)
    task = await container.task()
    exec_id = exec_id or f"exec-{secrets.token_hex(6)}"
    creator = stdio_creator(terminal=tty, null_io=null_io or (detach and not (log_uri or fifo_dir)),
                            log_uri=log_uri, fifo_dir=fifo_dir)
    with raw_terminal(tty and not detach):
        process = await task.exec(exec_id, list(args), stdio=creator, terminal=tty, env=list(env), cwd=cwd)
        try:
            if detach:
                await process.start()
                return 0
            async with foreground(process, terminal=tty):
                await process.start()
                status = await process.wait()
        except BaseException:
            with contextlib.suppress(Exception):
                await process.kill(9)
                await process.wait()
            with contextlib.suppress(Exception):
                await process.delete()
            raise
        await process.delete()
    return status.code


@tasks.command("kill")
@click.option("-s", "--signal", "sig", metavar="SIGNAL",
              help="Signal name or number (default: the image's stop signal, else SIGTERM).")
@click.option("-a", "--all", "all_", is_flag=True, help="Signal every process of the task.")
@click.option("--exec-id", help="Signal this exec'd process instead of the init process.")
@click.argument("ids", nargs=-1, required=True, metavar="CONTAINER...")
@pass_client
async def kill(client: AsyncClient, sig: str | None, all_: bool, exec_id: str | None, ids: tuple[str, ...]) -> None:
    """Signal tasks."""
    async with each(ids) as attempt:
        for cid in ids:
            async with attempt():
                container = await client.load_container(cid)
                signal = sig
                if signal is None:
                    signal = (await container.labels()).get(STOP_SIGNAL_LABEL) or "SIGTERM"
                task = await container.task()
                if exec_id:
                    await (await task.load_process(exec_id)).kill(signal, all=all_)
                else:
                    await task.kill(signal, all=all_)


@tasks.command("ps")
@format_option
@click.argument("container_id", metavar="CONTAINER")
@pass_client
async def ps(client: AsyncClient, fmt: str, container_id: str) -> None:
    """List a task's processes."""
    task = await (await client.load_container(container_id)).task()
    procs = await task.pids()
    rows = [[p.pid, p.exec_id or "-"] for p in procs]
    items = [{"pid": p.pid, "exec_id": p.exec_id} for p in procs]
    echo_listing(fmt, False, ["PID", "INFO"], rows, items, [str(p.pid) for p in procs])


@tasks.command("pause")
@click.argument("ids", nargs=-1, required=True, metavar="CONTAINER...")
@pass_client
async def pause(client: AsyncClient, ids: tuple[str, ...]) -> None:
    """Freeze tasks."""
    async with each(ids) as attempt:
        for cid in ids:
            async with attempt():
                await (await (await client.load_container(cid)).task()).pause()


@tasks.command("resume")
@click.argument("ids", nargs=-1, required=True, metavar="CONTAINER...")
@pass_client
async def resume(client: AsyncClient, ids: tuple[str, ...]) -> None:
    """Thaw paused tasks."""
    async with each(ids) as attempt:
        for cid in ids:
            async with attempt():
                await (await (await client.load_container(cid)).task()).resume()


def metric_rows(data: Any) -> list[tuple[str, Any]]:
    """``(METRIC, VALUE)`` rows of a cgroup v1 or v2 metrics message, as ``ctr tasks
    metrics`` prints them."""
    if not isinstance(data, Message):
        return []
    name = data.DESCRIPTOR.full_name
    rows: list[tuple[str, Any]] = []
    if name == "io.containerd.cgroups.v1.Metrics":
        if data.HasField("memory"):
            rows += [("memory.usage_in_bytes", data.memory.usage.usage),
                     ("memory.limit_in_bytes", data.memory.usage.limit),
                     ("memory.stat.cache", data.memory.cache)]
        if data.HasField("cpu"):
            rows += [("cpuacct.usage", data.cpu.usage.total),
                     ("cpuacct.usage_percpu", "[" + " ".join(str(x) for x in data.cpu.usage.per_cpu) + "]")]
        if data.HasField("pids"):
            rows += [("pids.current", data.pids.current), ("pids.limit", data.pids.limit)]
    elif name == "io.containerd.cgroups.v2.Metrics":
        if data.HasField("pids"):
            rows += [("pids.current", data.pids.current), ("pids.limit", data.pids.limit)]
        if data.HasField("cpu"):
            rows += [("cpu.usage_usec", data.cpu.usage_usec), ("cpu.user_usec", data.cpu.user_usec),
                     ("cpu.system_usec", data.cpu.system_usec), ("cpu.nr_periods", data.cpu.nr_periods),
                     ("cpu.nr_throttled", data.cpu.nr_throttled),
                     ("cpu.throttled_usec", data.cpu.throttled_usec)]
        if data.HasField("memory"):
            rows += [("memory.usage", data.memory.usage), ("memory.usage_limit", data.memory.usage_limit),
                     ("memory.swap_usage", data.memory.swap_usage),
                     ("memory.swap_limit", data.memory.swap_limit)]
    return rows


@tasks.command("metrics")
@format_option
@click.argument("ids", nargs=-1, required=True, metavar="CONTAINER...")
@pass_client
async def metrics(client: AsyncClient, fmt: str, ids: tuple[str, ...]) -> None:
    """Print tasks' cgroup statistics."""
    found: list[TaskMetrics] = []
    for cid in ids:
        ms = await client.task_metrics(f"id=={cid}")
        if not ms:
            raise NotFound(f"no running task found: task \"{cid}\"")
        found += ms
    if fmt == "json":
        click.echo(dumps([{"id": m.id, "timestamp": m.timestamp,
                           "data": m.data if isinstance(m.data, Message) else None} for m in found]))
        return
    for m in found:
        click.echo(table(["ID", "TIMESTAMP"], [[m.id, go_time(m.timestamp)]]), nl=False)
        click.echo()
        click.echo(table(["METRIC", "VALUE"], metric_rows(m.data)), nl=False)


@tasks.command("rm")
@click.option("-f", "--force", is_flag=True, help="Kill a running task first (SIGKILL).")
@click.argument("ids", nargs=-1, required=True, metavar="CONTAINER...")
@pass_client
async def rm(client: AsyncClient, force: bool, ids: tuple[str, ...]) -> None:
    """Delete stopped tasks (their containers stay)."""
    async with each(ids) as attempt:
        for cid in ids:
            async with attempt():
                task = await (await client.load_container(cid)).task()
                status = await task.status()
                if status.status in ("running", "paused", "pausing"):
                    if not force:
                        raise FailedPrecondition(f"task {cid} must be stopped before deletion: {status.status} "
                                                 "(use -f to kill it)")
                    with contextlib.suppress(NotFound):
                        await task.kill(9, all=True)
                    if status.status != "running":
                        with contextlib.suppress(NotFound, FailedPrecondition):
                            await task.resume()  # a frozen process cannot die
                    await task.wait()
                await task.delete()
