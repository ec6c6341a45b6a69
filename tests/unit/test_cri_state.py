"""The CRI lifecycle state machines: every transition and every operation, as a matrix."""

from __future__ import annotations

import itertools

import pytest

from pycontainerd.api.cri.runtime.v1 import api_pb2 as cri
from pycontainerd.cri.state import (
    CONTAINER_OPS,
    CONTAINER_TRANSITIONS,
    SANDBOX_OPS,
    SANDBOX_TRANSITIONS,
    ContainerOp,
    ContainerState,
    SandboxOp,
    SandboxState,
    allowed,
    can_transition,
    check_container_op,
    check_sandbox_op,
    check_transition,
)
from pycontainerd.errdefs import FailedPrecondition, Unknown

S, C = SandboxState, ContainerState

SANDBOX_EDGES = {
    (S.INIT, S.READY), (S.INIT, S.NOTREADY), (S.INIT, S.REMOVED),
    (S.READY, S.NOTREADY), (S.READY, S.UNKNOWN),
    (S.UNKNOWN, S.READY), (S.UNKNOWN, S.NOTREADY),
    (S.NOTREADY, S.REMOVED),
}
CONTAINER_EDGES = {
    (C.CREATED, C.RUNNING), (C.CREATED, C.EXITED), (C.CREATED, C.REMOVED),
    (C.RUNNING, C.EXITED), (C.RUNNING, C.UNKNOWN),
    (C.UNKNOWN, C.RUNNING), (C.UNKNOWN, C.EXITED),
    (C.EXITED, C.REMOVED),
}


@pytest.mark.parametrize(("a", "b"), list(itertools.product(SandboxState, SandboxState)))
def test_sandbox_transition_matrix(a, b):
    assert can_transition(a, b) == ((a, b) in SANDBOX_EDGES)
    if (a, b) in SANDBOX_EDGES:
        check_transition("sandbox", "x", a, b)
    else:
        with pytest.raises(FailedPrecondition, match=f"cannot go from {a.value} to {b.value}"):
            check_transition("sandbox", "x", a, b)


@pytest.mark.parametrize(("a", "b"), list(itertools.product(ContainerState, ContainerState)))
def test_container_transition_matrix(a, b):
    assert can_transition(a, b) == ((a, b) in CONTAINER_EDGES)
    if (a, b) not in CONTAINER_EDGES:
        with pytest.raises(FailedPrecondition):
            check_transition("container", "x", a, b)


def test_tables_cover_every_state_and_removed_is_terminal():
    assert set(SANDBOX_TRANSITIONS) == set(SandboxState)
    assert set(CONTAINER_TRANSITIONS) == set(ContainerState)
    assert not SANDBOX_TRANSITIONS[S.REMOVED] and not CONTAINER_TRANSITIONS[C.REMOVED]
    # every state but REMOVED can reach REMOVED
    for table, removed in ((SANDBOX_TRANSITIONS, S.REMOVED), (CONTAINER_TRANSITIONS, C.REMOVED)):
        for start in table:
            seen, todo = {start}, [start]
            while todo:
                for nxt in table[todo.pop()]:
                    if nxt not in seen:
                        seen.add(nxt)
                        todo.append(nxt)
            assert removed in seen, start


CONTAINER_OP_MATRIX = {
    ContainerOp.START: {C.CREATED},
    ContainerOp.STOP: {C.RUNNING, C.UNKNOWN},
    ContainerOp.REMOVE: {C.CREATED, C.RUNNING, C.EXITED, C.UNKNOWN},
    ContainerOp.EXEC: {C.RUNNING},
    ContainerOp.ATTACH: {C.RUNNING},
    ContainerOp.UPDATE: {C.CREATED, C.RUNNING},
    ContainerOp.REOPEN_LOG: {C.RUNNING},
}
SANDBOX_OP_MATRIX = {
    SandboxOp.CREATE_CONTAINER: {S.READY},
    SandboxOp.START_CONTAINER: {S.READY},
    SandboxOp.STOP: {S.INIT, S.READY, S.UNKNOWN},
    SandboxOp.REMOVE: {S.INIT, S.READY, S.NOTREADY, S.UNKNOWN},
    SandboxOp.PORT_FORWARD: {S.READY},
}


@pytest.mark.parametrize(("op", "state"), list(itertools.product(ContainerOp, ContainerState)))
def test_container_operation_matrix(op, state):
    assert set(CONTAINER_OPS) == set(ContainerOp)
    want = state in CONTAINER_OP_MATRIX[op]
    assert allowed(op, state) is want
    if want:
        check_container_op(op, "c1", state)
    else:
        error = Unknown if op in (ContainerOp.EXEC, ContainerOp.ATTACH) else FailedPrecondition
        with pytest.raises(error, match=f"container is in {state.cri_name} state"):
            check_container_op(op, "c1", state)


@pytest.mark.parametrize(("op", "state"), list(itertools.product(SandboxOp, SandboxState)))
def test_sandbox_operation_matrix(op, state):
    assert set(SANDBOX_OPS) == set(SandboxOp)
    want = state in SANDBOX_OP_MATRIX[op]
    assert allowed(op, state) is want
    if not want:
        with pytest.raises(FailedPrecondition, match="sandbox"):
            check_sandbox_op(op, "s1", state)


def test_cri_state_values():
    assert [s.to_cri() for s in (C.CREATED, C.RUNNING, C.EXITED, C.UNKNOWN)] == [
        cri.CONTAINER_CREATED, cri.CONTAINER_RUNNING, cri.CONTAINER_EXITED, cri.CONTAINER_UNKNOWN]
    assert S.READY.to_cri() == cri.SANDBOX_READY
    assert {s.to_cri() for s in SandboxState if s is not S.READY} == {cri.SANDBOX_NOTREADY}
    assert C.EXITED.cri_name == "CONTAINER_EXITED"


def test_records_enforce_transitions():
    from pycontainerd.cri.store import Container, Sandbox

    sb = Sandbox(id="s", name="n", config=cri.PodSandboxConfig(), runtime_handler="", runtime_name="runc",
                 created_at=1)
    sb.set_state(S.READY)
    with pytest.raises(FailedPrecondition):
        sb.set_state(S.REMOVED)   # must stop first
    sb.set_state(S.NOTREADY)
    sb.set_state(S.REMOVED)
    ct = Container(id="c", name="n", sandbox_id="s", config=cri.ContainerConfig(), created_at=1, image_ref="i",
                   image_id="sha256:x")
    ct.set_state(C.RUNNING)
    ct.set_state(C.RUNNING)  # staying put is not a transition
    with pytest.raises(FailedPrecondition):
        ct.set_state(C.CREATED)
