"""The lifecycle of a shim process (a task's init or an exec'd process), as data.

::

                start               pause
     CREATED ─────────► RUNNING ◄─────────► PAUSED
        │  ╲               │      resume      │
        │   ╲ exit/kill    │ exit             │ exit
        │    ╲             ▼                  │
        │     ╲──────► STOPPED ◄──────────────┘
        │ delete           │ delete
        ▼                  ▼
     DELETED ◄─────────────┘

:data:`TRANSITIONS` lists the allowed moves and :data:`OPERATIONS` the states each call is
accepted in (after containerd's ``pkg/process/init_state.go`` and ``exec_state.go``);
anything else raises :class:`~pycontainerd.errdefs.FailedPrecondition`, except ``kill`` of a
process that has already exited, which is :class:`~pycontainerd.errdefs.NotFound`
(``process already finished``), as containerd's ``checkKillError`` reports it.
Pause, resume, exec and update apply to the init process only.
"""

from __future__ import annotations

import enum

from ..errdefs import FailedPrecondition, NotFound


class Status(enum.Enum):
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    DELETED = "deleted"


class Op(enum.Enum):
    START = "start"
    DELETE = "delete"
    KILL = "kill"
    PAUSE = "pause"
    RESUME = "resume"
    EXEC = "exec"
    UPDATE = "update"
    RESIZE = "resize"
    CHECKPOINT = "checkpoint"


C, R, P, S, D = Status.CREATED, Status.RUNNING, Status.PAUSED, Status.STOPPED, Status.DELETED

TRANSITIONS: dict[Status, frozenset[Status]] = {
    C: frozenset({R, S, D}),
    R: frozenset({P, S}),
    P: frozenset({R, S}),
    S: frozenset({D}),
    D: frozenset(),
}
"""Allowed ``from → to`` moves."""

OPERATIONS: dict[Op, frozenset[Status]] = {
    Op.START: frozenset({C}),
    Op.DELETE: frozenset({C, S}),
    Op.KILL: frozenset({C, R, P}),
    Op.PAUSE: frozenset({R}),
    Op.RESUME: frozenset({P}),
    Op.EXEC: frozenset({C, R}),
    Op.UPDATE: frozenset({C, R, P}),
    Op.RESIZE: frozenset({C, R, P}),
    Op.CHECKPOINT: frozenset({R, P}),
}
"""The states in which each call is accepted."""

INIT_ONLY = frozenset({Op.PAUSE, Op.RESUME, Op.EXEC, Op.UPDATE, Op.CHECKPOINT})


class StateMachine:
    """The status of one process plus the checks of the tables above."""

    def __init__(self, kind: str = "task", status: Status = Status.CREATED) -> None:
        self.kind = kind
        self.status = status

    def check(self, op: Op) -> None:
        """Raise unless ``op`` is accepted now (see the module docstring)."""
        if op in OPERATIONS and self.status in OPERATIONS[op]:
            return
        if op is Op.KILL and self.status in (S, D):
            raise NotFound("process already finished")
        raise FailedPrecondition(f"cannot {op.value} {self.kind} in {self.status.value} state")

    def transition(self, to: Status) -> None:
        if to not in TRANSITIONS[self.status]:
            raise FailedPrecondition(f"invalid state transition {self.status.value!r} to {to.value!r}")
        self.status = to

    @property
    def exited(self) -> bool:
        return self.status in (S, D)
