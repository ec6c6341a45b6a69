"""Explicit lifecycle state machines for CRI sandboxes and containers.

Each lifecycle is an :class:`enum.Enum` plus a table of allowed transitions; moving along an
edge that is not in the table raises :class:`~pycontainerd.errdefs.FailedPrecondition`.
A second table says in which states each operation may run (the youki style: one place
holds the rules, and the whole matrix is unit-tested).

Sandboxes (containerd's ``store/sandbox/status.go``)::

        RunPodSandbox                      pause exits / StopPodSandbox
    ──────────────► INIT ──► READY ────────────────────────────────► NOTREADY ──► REMOVED
                     │         │ ▲                                        ▲  RemovePodSandbox
                     │         ▼ │ (recovery finds the shim again)        │
                     │       UNKNOWN ─────────────────────────────────────┘
                     └── setup failed ──► REMOVED (everything undone)

Containers (``store/container/status.go``)::

     CreateContainer        StartContainer          process exits / StopContainer
    ───────────────► CREATED ──────────────► RUNNING ─────────────────────────────► EXITED
                       │  └── start failed (StartError) ─────────────────────────►   │
                       │                        │ ▲                                  │
                       │                        ▼ │ recovery                         │
                       │                      UNKNOWN ──────────────────────────►    │
                       └──────────────────────► REMOVED ◄────────────────────────────┘
                                   RemoveContainer

REMOVED is terminal and never reported through the CRI (the object is gone).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from ..api.cri.runtime.v1 import api_pb2 as cri
from ..errdefs import FailedPrecondition, Unknown


class SandboxState(enum.Enum):
    INIT = "init"
    READY = "ready"
    NOTREADY = "notready"
    UNKNOWN = "unknown"
    REMOVED = "removed"

    def to_cri(self) -> int:
        """The CRI ``PodSandboxState``: only READY is ready."""
        return cri.SANDBOX_READY if self is SandboxState.READY else cri.SANDBOX_NOTREADY


class ContainerState(enum.Enum):
    CREATED = "created"
    RUNNING = "running"
    EXITED = "exited"
    UNKNOWN = "unknown"
    REMOVED = "removed"

    def to_cri(self) -> int:
        return _CONTAINER_TO_CRI[self]

    @property
    def cri_name(self) -> str:
        return cri.ContainerState.Name(self.to_cri())


_CONTAINER_TO_CRI = {
    ContainerState.CREATED: cri.CONTAINER_CREATED,
    ContainerState.RUNNING: cri.CONTAINER_RUNNING,
    ContainerState.EXITED: cri.CONTAINER_EXITED,
    ContainerState.UNKNOWN: cri.CONTAINER_UNKNOWN,
    ContainerState.REMOVED: cri.CONTAINER_UNKNOWN,
}

SANDBOX_TRANSITIONS: Mapping[SandboxState, frozenset[SandboxState]] = {
    SandboxState.INIT: frozenset({SandboxState.READY, SandboxState.NOTREADY, SandboxState.REMOVED}),
    SandboxState.READY: frozenset({SandboxState.NOTREADY, SandboxState.UNKNOWN}),
    SandboxState.UNKNOWN: frozenset({SandboxState.READY, SandboxState.NOTREADY}),
    SandboxState.NOTREADY: frozenset({SandboxState.REMOVED}),
    SandboxState.REMOVED: frozenset(),
}

CONTAINER_TRANSITIONS: Mapping[ContainerState, frozenset[ContainerState]] = {
    ContainerState.CREATED: frozenset({ContainerState.RUNNING, ContainerState.EXITED, ContainerState.REMOVED}),
    ContainerState.RUNNING: frozenset({ContainerState.EXITED, ContainerState.UNKNOWN}),
    ContainerState.UNKNOWN: frozenset({ContainerState.RUNNING, ContainerState.EXITED}),
    ContainerState.EXITED: frozenset({ContainerState.REMOVED}),
    ContainerState.REMOVED: frozenset(),
}


class SandboxOp(enum.Enum):
    """Operations that depend on a sandbox's state."""

    CREATE_CONTAINER = "create a container in"
    START_CONTAINER = "start a container in"
    STOP = "stop"          # only READY/UNKNOWN/INIT need work; otherwise stop is a no-op
    REMOVE = "remove"      # READY/UNKNOWN are stopped first
    PORT_FORWARD = "port-forward to"


class ContainerOp(enum.Enum):
    """Operations that depend on a container's state."""

    START = "start"
    STOP = "stop"          # only RUNNING/UNKNOWN need work; otherwise stop is a no-op
    REMOVE = "remove"      # RUNNING/UNKNOWN are stopped first
    EXEC = "exec in"
    ATTACH = "attach to"
    UPDATE = "update resources of"
    REOPEN_LOG = "reopen the log of"


SANDBOX_OPS: Mapping[SandboxOp, frozenset[SandboxState]] = {
    SandboxOp.CREATE_CONTAINER: frozenset({SandboxState.READY}),
    SandboxOp.START_CONTAINER: frozenset({SandboxState.READY}),
    SandboxOp.STOP: frozenset({SandboxState.INIT, SandboxState.READY, SandboxState.UNKNOWN}),
    SandboxOp.REMOVE: frozenset({SandboxState.INIT, SandboxState.READY, SandboxState.NOTREADY,
                                 SandboxState.UNKNOWN}),
    SandboxOp.PORT_FORWARD: frozenset({SandboxState.READY}),
}

CONTAINER_OPS: Mapping[ContainerOp, frozenset[ContainerState]] = {
    ContainerOp.START: frozenset({ContainerState.CREATED}),
    ContainerOp.STOP: frozenset({ContainerState.RUNNING, ContainerState.UNKNOWN}),
    ContainerOp.REMOVE: frozenset({ContainerState.CREATED, ContainerState.RUNNING, ContainerState.EXITED,
                                   ContainerState.UNKNOWN}),
    ContainerOp.EXEC: frozenset({ContainerState.RUNNING}),
    ContainerOp.ATTACH: frozenset({ContainerState.RUNNING}),
    ContainerOp.UPDATE: frozenset({ContainerState.CREATED, ContainerState.RUNNING}),
    ContainerOp.REOPEN_LOG: frozenset({ContainerState.RUNNING}),
}


def can_transition(current: enum.Enum, target: enum.Enum) -> bool:
    table = SANDBOX_TRANSITIONS if isinstance(current, SandboxState) else CONTAINER_TRANSITIONS
    return target in table[current]  # type: ignore[index]


def check_transition(kind: str, obj_id: str, current: enum.Enum, target: enum.Enum) -> None:
    """Raise :class:`FailedPrecondition` unless ``current → target`` is an edge."""
    if not can_transition(current, target):
        raise FailedPrecondition(f"{kind} {obj_id!r} cannot go from {current.value} to {target.value}")


def allowed(op: enum.Enum, state: enum.Enum) -> bool:
    table = SANDBOX_OPS if isinstance(op, SandboxOp) else CONTAINER_OPS
    return state in table[op]  # type: ignore[index]


def check_container_op(op: ContainerOp, container_id: str, state: ContainerState) -> None:
    """Raise :class:`FailedPrecondition` (``container "x" is in CONTAINER_EXITED state``)
    unless ``op`` may run in ``state`` — :class:`Unknown` for exec and attach, whose refusal
    containerd's CRI returns as a plain error (code UNKNOWN)."""
    if not allowed(op, state):
        error = Unknown if op in (ContainerOp.EXEC, ContainerOp.ATTACH) else FailedPrecondition
        raise error(f"cannot {op.value} container {container_id!r}: container is in {state.cri_name} state")


def check_sandbox_op(op: SandboxOp, sandbox_id: str, state: SandboxState) -> None:
    if not allowed(op, state):
        raise FailedPrecondition(f"cannot {op.value} sandbox {sandbox_id!r}: sandbox is "
                                 f"{'not ready' if state is not SandboxState.READY else 'ready'} ({state.value})")
