"""The shim's bookkeeping: a :class:`Container` (one task) and its :class:`Process` es.

A container has one init process (id = container id, ``exec_id`` empty) and any number of
exec'd processes. Each process carries its :class:`~.state.StateMachine`, its stdio and the
``Wait`` calls parked on it. Nothing here runs a command: :mod:`.service` does, and tells
these objects what happened.
"""

from __future__ import annotations

import json
import os

from ..errdefs import AlreadyExists, NotFound
from ..ttrpc.server import Deferred
from ..sysutil import files
from .cgroups import Cgroup
from .runc import Runc
from .state import StateMachine, Status
from .stdio import ProcessIO


class Process:
    def __init__(self, container: Container, exec_id: str = "", *, stdin: str = "", stdout: str = "",
                 stderr: str = "", terminal: bool = False, spec: bytes = b"") -> None:
        self.container = container
        self.exec_id = exec_id
        self.id = exec_id or container.id
        self.stdin, self.stdout, self.stderr, self.terminal = stdin, stdout, stderr, terminal
        self.spec = spec  # OCI process JSON of an exec
        self.sm = StateMachine("task" if not exec_id else "process")
        self.pid = 0
        self.exit_status = 0
        self.exited_at_ns = 0
        self.io: ProcessIO | None = None
        self.waiters: list[Deferred] = []
        self.starting = False  # between the runtime's start and the start event (exits held back)

    @property
    def is_init(self) -> bool:
        return not self.exec_id

    @property
    def status(self) -> Status:
        return self.sm.status

    def set_exited(self, status: int, when_ns: int) -> None:
        """Record the exit (idempotent: the first exit wins) and move to STOPPED."""
        if self.sm.exited:
            return
        self.exit_status = status
        self.exited_at_ns = when_ns
        self.sm.transition(Status.STOPPED)

    def release_waiters(self, payload: bytes) -> None:
        waiters, self.waiters = self.waiters, []
        for d in waiters:
            d.resolve(payload)


class Container:
    def __init__(self, id: str, bundle: str, namespace: str, runc: Runc, *, rootfs: str = "",
                 options: dict | None = None) -> None:
        self.id = id
        self.bundle = bundle
        self.namespace = namespace
        self.runc = runc
        self.rootfs = rootfs  # the mounted rootfs, "" when the bundle brought its own
        self.options = options or {}
        self.init = Process(self)
        self.execs: dict[str, Process] = {}
        self.cgroup: Cgroup | None = None
        self.oom_watch = None  # cgroups.OomWatch from create on (before runc start)
        self.held_init_exit: tuple[int, int] | None = None  # (status, when): waits for exec exits
        self.kill_all_on_exit = should_kill_all_on_exit(bundle)

    def process(self, exec_id: str) -> Process:
        if not exec_id:
            return self.init
        p = self.execs.get(exec_id)
        if p is None:
            raise NotFound(f"process does not exist {exec_id}")
        return p

    def all(self) -> list[Process]:
        return [self.init, *self.execs.values()]

    def running_execs(self) -> list[Process]:
        return [p for p in self.execs.values() if p.pid and not p.sm.exited]

    @property
    def pid_file(self) -> str:
        return os.path.join(self.bundle, "init.pid")

    def exec_paths(self, exec_id: str) -> tuple[str, str]:
        """``(process.json, pid file)`` of an exec (``exec-<id>.*`` never collides with ``init.pid``)."""
        return (os.path.join(self.bundle, f"exec-{exec_id}.json"), os.path.join(self.bundle, f"exec-{exec_id}.pid"))

    def reserve_exec(self, exec_id: str) -> None:
        if exec_id in self.execs:
            raise AlreadyExists(f"id {exec_id}")


def should_kill_all_on_exit(bundle: str) -> bool:
    """True when the spec has no pid namespace of its own: then the init's exit must take
    every other process of the container with it (containerd's ``ShouldKillAllOnExit``)."""
    try:
        spec = json.loads(files.read_text(os.path.join(bundle, "config.json")))
    except (OSError, ValueError):
        return True
    if not isinstance(spec, dict):
        return True
    for ns in (spec.get("linux") or {}).get("namespaces") or []:
        if isinstance(ns, dict) and ns.get("type") == "pid" and not ns.get("path"):
            return False
    return True
