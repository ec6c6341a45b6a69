"""``ExecSync``: run ``cmd`` in a RUNNING container with the container's process settings
(user, env, cwd, capabilities), collect stdout and stderr (16 MiB each at most, the rest is
read and dropped, as containerd's ``cappedWriter``) and the exit code. With ``timeout`` > 0
the process is killed when it runs longer and the call fails with DEADLINE_EXCEEDED.

Once the process has exited its output is drained until the streams close, but no longer
than ``IO_WAIT`` seconds and never past the call's ``timeout``: a child left running in the
background (``sh -c 'daemon &'``) holds the write ends of the pipes and would keep the call
waiting for as long as it lives (containerd #9568). The call then returns the exit code and
what was read so far."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import secrets
import signal

from ...api.cri.runtime.v1 import api_pb2 as cri
from ...errdefs import ContainerdError, DeadlineExceeded, InvalidArgument
from ..logs import ExecIO
from ..service import CRIService
from ..state import ContainerOp, check_container_op

IO_WAIT = 5.0
MIN_DRAIN = 0.2
"""Output written just before the exit still gets this long, even at the deadline."""


async def exec_sync(svc: CRIService, req: cri.ExecSyncRequest) -> cri.ExecSyncResponse:
    ct = svc.containers.get(req.container_id)
    check_container_op(ContainerOp.EXEC, ct.id, ct.state)
    if not req.cmd:
        raise InvalidArgument("exec needs a command")
    process = copy.deepcopy(ct.spec.get("process") or {})
    process["args"] = list(req.cmd)
    process["terminal"] = False
    process.pop("consoleSize", None)
    exec_id = secrets.token_hex(16)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + req.timeout if req.timeout > 0 else None
    io = ExecIO(os.path.join(svc.container_state(ct.id), "exec"), exec_id)
    io.start()
    added = False
    try:
        await svc.daemon.exec(ct.id, exec_id, process, stdout=io.stdout, stderr=io.stderr)
        added = True
        await svc.daemon.start_task(ct.id, exec_id)
        wait = asyncio.ensure_future(svc.daemon.wait(ct.id, exec_id))
        try:
            if req.timeout > 0:
                done, _ = await asyncio.wait({wait}, timeout=req.timeout)
                if not done:
                    with contextlib.suppress(ContainerdError):
                        await svc.daemon.kill(ct.id, signal.SIGKILL, exec_id=exec_id)
                    with contextlib.suppress(ContainerdError, asyncio.TimeoutError):
                        await asyncio.wait_for(wait, 10)
                    raise DeadlineExceeded(f"timeout {req.timeout}s exceeded running {list(req.cmd)!r} "
                                           f"in container {ct.id!r}")
            exit_status, _ = await wait
        finally:
            if not wait.done():
                wait.cancel()
        drain = IO_WAIT if deadline is None else min(IO_WAIT, max(MIN_DRAIN, deadline - loop.time()))
        await io.wait(drain)
        return cri.ExecSyncResponse(stdout=bytes(io.out), stderr=bytes(io.err), exit_code=exit_status)
    finally:
        if added:
            with contextlib.suppress(ContainerdError):
                await svc.daemon.delete_process(ct.id, exec_id)
        await io.close()
