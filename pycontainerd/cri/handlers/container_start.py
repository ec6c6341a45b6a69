"""``StartContainer``: fifos for stdout/stderr (one for a tty) copied into the CRI log,
then the task is created and started; the container is RUNNING and its exit is watched.

Only a CREATED container in a READY sandbox starts (FAILED_PRECONDITION otherwise). A
start that fails leaves the container EXITED with reason ``StartError`` (exit code 128)
and the error as message (containerd's words: ``failed to create containerd task: <the
runtime's error>``), and no task behind. The failure is the container's alone: its pod's
shim, shared with the pod's other containers, keeps serving them.
"""

from __future__ import annotations

import contextlib
import os

from ...api.cri.runtime.v1 import api_pb2 as cri
from ...errdefs import ContainerdError, quote, wrap
from ..logs import ContainerIO, make_fifo
from ..service import START_ERROR_EXIT_CODE
from ..service import CRIService
from ..state import (
    ContainerOp,
    ContainerState,
    SandboxOp,
    check_container_op,
    check_sandbox_op,
)
from ..util import now_ns, process_identity


async def start_container(svc: CRIService, req: cri.StartContainerRequest) -> cri.StartContainerResponse:
    ct = svc.containers.get(req.container_id)
    async with ct.lock:
        check_container_op(ContainerOp.START, ct.id, ct.state)
        sb = svc.sandboxes.get(ct.sandbox_id)
        check_sandbox_op(SandboxOp.START_CONTAINER, sb.id, sb.state)
        io = ContainerIO(os.path.join(svc.container_state(ct.id), "io"), tty=ct.config.tty, log_path=ct.log_path,
                         max_line=svc.config.max_container_log_line_size)
        created = False
        try:
            io.create_fifos()
            stdin = ""
            if ct.config.stdin:                     # for Attach: the streaming server writes here
                stdin = os.path.join(io.directory, "stdin")
                make_fifo(stdin)
            io.start()
            mounts = await svc.daemon.mounts(ct.id)
            try:
                init_pid = await svc.daemon.create_task(ct.id, mounts, stdout=io.stdout, stderr=io.stderr, stdin=stdin,
                                            terminal=ct.config.tty)
            except ContainerdError as exc:
                raise wrap(exc, "failed to create containerd task") from exc
            created = True
            # runc's init has taken the container's identity and waits for Start: record it
            identity = process_identity(init_pid) if init_pid else None
            started_at = now_ns()  # before the process runs: it may well have exited when Start returns
            try:
                pid = await svc.daemon.start_task(ct.id)
            except ContainerdError as exc:
                raise wrap(exc, f"failed to start containerd task {quote(ct.id)}") from exc
        except BaseException as exc:
            if created:
                with contextlib.suppress(ContainerdError):
                    await svc.daemon.kill(ct.id, 9)
                with contextlib.suppress(ContainerdError):
                    await svc.daemon.delete_task(ct.id)
            await io.close()
            io.remove()
            ct.pid = 0
            ct.finished_at = now_ns()
            ct.exit_code = START_ERROR_EXIT_CODE
            ct.reason = "StartError"
            ct.message = str(exc)
            ct.set_state(ContainerState.EXITED)
            ct.exited.set()
            with contextlib.suppress(OSError):
                svc.save(ct)
            raise
        ct.io = io
        ct.pid = pid
        if identity is not None:
            ct.user = identity
        ct.started_at = started_at
        ct.stdout_path, ct.stderr_path = io.stdout, io.stderr
        ct.set_state(ContainerState.RUNNING)
        svc.save(ct)
        svc.exits.watch(ct)
    svc.publish(cri.CONTAINER_STARTED_EVENT, ct)
    return cri.StartContainerResponse()
