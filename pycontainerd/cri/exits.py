"""Exits and OOM kills of CRI tasks, from ONE subscription to the daemon's event exchange
(``/tasks/exit`` and ``/tasks/oom`` of namespace ``k8s.io``), as containerd's CRI event
monitor does.

An init process's exit (``TaskExit`` with ``id == container_id``) of a watched sandbox or
container is handled in the background: the task is reaped, the log drained, the object
recorded EXITED (reason Completed, Error, or OOMKilled when a ``TaskOOM`` of the container
came first: the shim publishes the OOM before the exit) or NOTREADY, and a CRI event sent.
An exit that arrives before its object is watched (a process that ends while
``StartContainer`` is still returning) is kept until :meth:`ExitMonitor.watch` claims it.

The subscription is made before recovery reads the tasks' states, so nothing that ends in
between is missed.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from typing import TYPE_CHECKING

from ..api.cri.runtime.v1 import api_pb2 as cri
from ..api.events import task_pb2 as task_events
from ..errdefs import ContainerdError
from ..events.exchange import Envelope, Subscription
from ..log import get_logger
from ..typeurl import AnyValue
from .daemon import NAMESPACE
from .state import ContainerState, SandboxState
from .store import Container, Sandbox
from .util import now_ns

if TYPE_CHECKING:
    from .host import CRIHost

log = get_logger("cri")

TASK_EXIT = "/tasks/exit"
TASK_OOM = "/tasks/oom"
IO_DRAIN_TIMEOUT = 5.0
MAX_UNCLAIMED = 1024
_TYPES = {TASK_EXIT: task_events.TaskExit, TASK_OOM: task_events.TaskOOM}


def _decode(env: Envelope):
    cls = _TYPES[env.topic]
    event = env.event
    if isinstance(event, AnyValue):
        return cls.FromString(event.value)
    return event


class ExitMonitor:
    """See the module doc."""

    def __init__(self, svc: CRIHost) -> None:
        self.svc = svc
        self._sub: Subscription | None = None
        self._watched: set[str] = set()
        self._oom: set[str] = set()
        self._unclaimed: OrderedDict[str, tuple[int, int]] = OrderedDict()

    def subscribe(self) -> None:
        """Start receiving (events queue up until :meth:`run` reads them)."""
        self._sub = self.svc.daemon.exchange.subscribe(
            lambda env: env.namespace == NAMESPACE and env.topic in _TYPES)

    async def run(self) -> None:
        """Read the subscription until it is closed."""
        assert self._sub is not None
        try:
            async for env in self._sub:
                try:
                    self._dispatch(env.topic, _decode(env))
                except Exception as exc:  # noqa: BLE001 - one bad event must not end the monitor
                    log.error("cannot handle task event", topic=env.topic, error=str(exc))
        finally:
            self.close()

    def close(self) -> None:
        if self._sub is not None:
            self._sub.close()

    def _dispatch(self, topic: str, ev) -> None:
        if topic == TASK_OOM:
            self._oom.add(ev.container_id)
            return
        if ev.id and ev.id != ev.container_id:
            return  # an exec'd process: its caller waits for it
        cid = ev.container_id
        exited_at = ev.exited_at.ToNanoseconds() if ev.HasField("exited_at") else now_ns()
        if cid not in self._watched:
            self._unclaimed[cid] = (ev.exit_status, exited_at)
            self._unclaimed.move_to_end(cid)
            while len(self._unclaimed) > MAX_UNCLAIMED:
                self._unclaimed.popitem(last=False)
            return
        self._exited(cid, ev.exit_status, exited_at)

    def _exited(self, cid: str, exit_status: int, exited_at: int) -> None:
        self._watched.discard(cid)
        ct = self.svc.containers.find(cid)
        if ct is not None:
            ct.monitor = self.svc.spawn(self.handle_container_exit(ct, exit_status, exited_at))
            return
        sb = self.svc.sandboxes.find(cid)
        if sb is not None:
            sb.monitor = self.svc.spawn(self.handle_sandbox_exit(sb, exit_status, exited_at))

    def watch(self, obj: Sandbox | Container) -> None:
        """Handle the next exit of ``obj``'s task (or the one that already came)."""
        obj.exited.clear()
        early = self._unclaimed.pop(obj.id, None)
        self._watched.add(obj.id)
        if early is not None:
            self._exited(obj.id, *early)

    def forget(self, obj_id: str) -> None:
        """``obj_id`` is removed: drop what is kept for it."""
        self._watched.discard(obj_id)
        self._oom.discard(obj_id)
        self._unclaimed.pop(obj_id, None)

    async def handle_container_exit(self, c: Container, exit_status: int, exited_at: int) -> None:
        """The container's process ended: reap the task, finish the log, record EXITED with
        reason Completed, Error or OOMKilled."""
        self._watched.discard(c.id)
        if c.state not in (ContainerState.RUNNING, ContainerState.UNKNOWN) or c.exiting:
            if c.state is ContainerState.EXITED:
                c.exited.set()
            return
        c.exiting = True
        try:
            await self._finish_container(c, exit_status, exited_at)
        finally:
            c.exiting = False

    async def _finish_container(self, c: Container, exit_status: int, exited_at: int) -> None:
        svc = self.svc
        with contextlib.suppress(ContainerdError):
            await svc.daemon.delete_task(c.id)
        oom = c.id in self._oom
        self._oom.discard(c.id)
        if c.io is not None:
            await c.io.wait(IO_DRAIN_TIMEOUT)
            await c.io.close()
            c.io = None
        c.pid = 0
        c.finished_at = exited_at or now_ns()
        c.exit_code = exit_status
        c.reason = "OOMKilled" if oom else ("Completed" if exit_status == 0 else "Error")
        c.set_state(ContainerState.EXITED)
        with contextlib.suppress(OSError):
            svc.save(c)
        c.exited.set()
        svc.publish(cri.CONTAINER_STOPPED_EVENT, c)
        log.info("container exited", id=c.id, exit_code=exit_status, reason=c.reason)

    async def handle_sandbox_exit(self, sb: Sandbox, exit_status: int, exited_at: int) -> None:
        """The pause process ended (killed by StopPodSandbox, or died): NOTREADY."""
        svc = self.svc
        self._watched.discard(sb.id)
        with contextlib.suppress(ContainerdError):
            await svc.daemon.delete_task(sb.id)
        sb.pid = 0
        sb.exit_status, sb.exited_at = exit_status, exited_at or now_ns()
        if sb.state in (SandboxState.INIT, SandboxState.READY, SandboxState.UNKNOWN):
            sb.set_state(SandboxState.NOTREADY)
            with contextlib.suppress(OSError):
                svc.save(sb)
            svc.publish(cri.CONTAINER_STOPPED_EVENT, sb)
        sb.exited.set()
