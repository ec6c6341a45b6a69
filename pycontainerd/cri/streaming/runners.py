"""What runs behind a remote-command connection: an exec process through the task's shim
(:func:`serve_exec`) or an attachment to the container's own stdio (:func:`serve_attach`).

Exec: fifos ``<state>/containers/<id>/exec/<exec id>-{stdin,stdout,stderr}`` (one output
fifo with a tty), the process is added and started through the Tasks API; stdin from the
client is written to the stdin fifo and its end becomes ``CloseIO`` (EOF in the process);
resizes become ``ResizePty``; when the process exits its output is drained and the exit
code goes back as the v4 status. When the client disappears first, the process is killed
(SIGKILL) and deleted: nothing is left in the shim.

Attach: the container's output fifos are already read by the daemon (the CRI log copy);
the attachment subscribes to that copy; stdin goes to the container's stdin fifo (created
when the container config asks for ``stdin``). The end of the client's stdin, as in
containerd: with ``stdin_once`` and no tty it closes the container's stdin and the
attachment goes on until the container exits; otherwise it ends the attachment (a
detach: client-go closes stdin on crictl's and kubectl's detach keys) and the container's
stdin stays open. The attachment also ends when the container exits or the client leaves;
the container keeps running unless it exits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncio
import contextlib
import copy
import errno
import os
import secrets
import signal

from ...errdefs import ContainerdError
from ...log import get_logger
from ..logs import make_fifo
from ..state import ContainerState
from . import protocol as p
from .remotecommand import Streams

if TYPE_CHECKING:
    from ..service import CRIService

log = get_logger("cri.streaming")

CHUNK = 32 * 1024
DRAIN_TIMEOUT = 5.0
KILL_WAIT = 10.0


async def _wait_fd(fd: int, writable: bool = False) -> None:
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    add, remove = (loop.add_writer, loop.remove_writer) if writable else (loop.add_reader, loop.remove_reader)
    add(fd, lambda: fut.done() or fut.set_result(None))
    try:
        await fut
    finally:
        remove(fd)


async def pump_fifo(fd: int, sink) -> None:
    """Read the non-blocking fifo ``fd`` until every writer is gone, awaiting
    ``sink(chunk)`` for each chunk (back-pressure: nothing is read while it waits)."""
    while True:
        try:
            chunk = os.read(fd, CHUNK)
        except BlockingIOError:
            await _wait_fd(fd)
            continue
        except OSError as exc:
            if exc.errno == errno.EIO:
                return
            raise
        if not chunk:
            return
        await sink(chunk)


async def write_fd(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            await _wait_fd(fd, writable=True)
            continue
        view = view[n:]


def _close(fd: int | None) -> None:
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)


async def _cancel(tasks) -> None:
    for t in tasks:
        t.cancel()
    for t in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await t


async def _resize_loop(svc: CRIService, streams: Streams, cid: str, exec_id: str) -> None:
    while True:
        size = await streams.resizes.get()
        try:
            await svc.daemon.resize_pty(cid, size.width, size.height, exec_id=exec_id)
        except ContainerdError as exc:
            log.debug("resize failed", id=cid, exec_id=exec_id, error=str(exc))


async def serve_exec(svc: CRIService, container_id: str, cmd: list[str], streams: Streams) -> None:
    """Run ``cmd`` in the container for the connected client (see the module doc).
    Always ends with :meth:`Streams.finish`; errors become an InternalError status."""
    ct = svc.containers.find(container_id)
    if ct is None or ct.state is not ContainerState.RUNNING:
        await streams.finish(p.internal_error_status(f"container {container_id!r} is not running"))
        return
    opts = streams.opts
    process = copy.deepcopy(ct.spec.get("process") or {})
    process["args"] = list(cmd)
    process["terminal"] = opts.tty
    process.pop("consoleSize", None)
    if opts.tty and not any(e.startswith("TERM=") for e in process.get("env") or []):
        process.setdefault("env", []).append("TERM=xterm")
    exec_id = secrets.token_hex(16)
    directory = os.path.join(svc.container_state(ct.id), "exec")
    os.makedirs(directory, mode=0o700, exist_ok=True)
    paths = {k: os.path.join(directory, f"{exec_id}-{k}") for k in ("stdin", "stdout", "stderr")}
    want = {"stdin": opts.stdin, "stdout": opts.stdout, "stderr": opts.stderr and not opts.tty}
    fds: dict[str, int] = {}
    tasks: list[asyncio.Task] = []
    added = False
    status = None
    loop = asyncio.get_running_loop()
    try:
        for k, on in want.items():
            if on:
                make_fifo(paths[k])
                mode = os.O_RDWR if k == "stdin" else os.O_RDONLY   # RDWR: the open never waits for the shim
                fds[k] = os.open(paths[k], mode | os.O_NONBLOCK | os.O_CLOEXEC)
        await svc.daemon.exec(ct.id, exec_id, process, stdin=paths["stdin"] if opts.stdin else "",
                             stdout=paths["stdout"] if opts.stdout else "",
                             stderr=paths["stderr"] if want["stderr"] else "", terminal=opts.tty)
        added = True
        wait = loop.create_task(svc.daemon.wait(ct.id, exec_id))
        tasks.append(wait)
        await svc.daemon.start_task(ct.id, exec_id)
        log.info("exec started", id=ct.id, exec_id=exec_id, tty=opts.tty, protocol=streams.protocol)
        outputs = []
        for k in ("stdout", "stderr"):
            if k in fds:
                outputs.append(loop.create_task(pump_fifo(fds[k], lambda d, _k=k: streams.write(_k, d))))
        tasks += outputs
        if "stdin" in fds:
            tasks.append(loop.create_task(_feed_stdin(svc, streams, ct.id, exec_id, fds, "stdin")))
        if opts.tty:
            tasks.append(loop.create_task(_resize_loop(svc, streams, ct.id, exec_id)))
        gone = loop.create_task(streams.gone.wait())
        tasks.append(gone)
        await asyncio.wait({wait, gone}, return_when=asyncio.FIRST_COMPLETED)
        if not wait.done():
            log.info("exec client went away, killing the process", id=ct.id, exec_id=exec_id)
            with contextlib.suppress(ContainerdError):
                await svc.daemon.kill(ct.id, signal.SIGKILL, exec_id=exec_id)
            with contextlib.suppress(asyncio.TimeoutError, ContainerdError):
                await asyncio.wait_for(asyncio.shield(wait), KILL_WAIT)
            return
        code, _ = wait.result()
        if outputs:
            await asyncio.wait(outputs, timeout=DRAIN_TIMEOUT)
        status = p.exit_status(code, list(cmd))
        log.info("exec exited", id=ct.id, exec_id=exec_id, exit_code=code)
    except ContainerdError as exc:
        status = p.internal_error_status(str(exc))
    except asyncio.CancelledError:              # the daemon is stopping: do not leave the process behind
        if added:
            with contextlib.suppress(ContainerdError):
                await svc.daemon.kill(ct.id, signal.SIGKILL, exec_id=exec_id)
        raise
    finally:
        await _cancel(tasks)
        for fd in fds.values():
            _close(fd)
        try:    # the client has its answer before the process record is deleted
            await streams.finish(status or p.internal_error_status("client disconnected"))
        finally:
            if added:
                with contextlib.suppress(ContainerdError):
                    await svc.daemon.delete_process(ct.id, exec_id)
            for path in paths.values():
                with contextlib.suppress(OSError):
                    os.unlink(path)


async def _feed_stdin(svc: CRIService, streams: Streams, cid: str, exec_id: str, fds: dict[str, int], key: str) -> None:
    """Client stdin → fifo; at its end close our writer and the shim's (CloseIO)."""
    while data := await streams.read_stdin():
        await write_fd(fds[key], data)
    _close(fds.pop(key, None))
    with contextlib.suppress(ContainerdError):
        await svc.daemon.close_io(cid, exec_id)


def container_stdin_path(svc: CRIService, ct) -> str:
    """The container's stdin fifo (``""`` when the container was created without stdin)."""
    if ct.io is None:
        return ""
    path = os.path.join(ct.io.directory, "stdin")
    return path if os.path.exists(path) else ""


async def serve_attach(svc: CRIService, container_id: str, streams: Streams) -> None:
    """Join the running container's stdio (see the module doc)."""
    ct = svc.containers.find(container_id)
    if ct is None or ct.state is not ContainerState.RUNNING or ct.io is None:
        await streams.finish(p.internal_error_status(f"container {container_id!r} is not running"))
        return
    opts = streams.opts
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue(maxsize=1024)

    def on_output(stream: str, data: bytes) -> None:
        if (stream == "stdout" and opts.stdout) or (stream == "stderr" and opts.stderr):
            if queue.full():                    # a client that does not read loses the oldest output
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait((stream, data))

    async def forward() -> None:
        while (item := await queue.get()) is not None:
            await streams.write(*item)

    tasks: list[asyncio.Task] = []
    fds: dict[str, int] = {}
    status = p.success_status()
    detached = asyncio.Event()
    ct.io.listeners.add(on_output)
    try:
        fwd = loop.create_task(forward())
        tasks.append(fwd)
        stdin_path = container_stdin_path(svc, ct) if opts.stdin else ""
        if stdin_path:
            fds["stdin"] = os.open(stdin_path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
            close_container_stdin = ct.config.stdin_once and not opts.tty

            async def feed() -> None:
                while data := await streams.read_stdin():
                    await write_fd(fds["stdin"], data)
                _close(fds.pop("stdin", None))
                if not close_container_stdin:
                    detached.set()
                    return
                with contextlib.suppress(ContainerdError):
                    await svc.daemon.close_io(ct.id)
            tasks.append(loop.create_task(feed()))
        if opts.tty:
            tasks.append(loop.create_task(_resize_loop(svc, streams, ct.id, "")))
        exited = loop.create_task(ct.exited.wait())
        gone = loop.create_task(streams.gone.wait())
        detach = loop.create_task(detached.wait())
        tasks += [exited, gone, detach]
        await asyncio.wait({exited, gone, detach}, return_when=asyncio.FIRST_COMPLETED)
        if detach.done() and not exited.done():
            log.info("attach client closed stdin: detached", id=ct.id)
        if exited.done() or detach.done():      # what was read so far still goes out
            queue.put_nowait(None)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(fwd), DRAIN_TIMEOUT)
    finally:
        if ct.io is not None:
            ct.io.listeners.discard(on_output)
        await _cancel(tasks)
        for fd in fds.values():
            _close(fd)
        await streams.finish(status)


__all__ = ["pump_fifo", "serve_attach", "serve_exec", "write_fd"]
