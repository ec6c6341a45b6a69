"""The shim's process state machine, as a full matrix (youki style): every operation in
every state, every transition from every state."""

from __future__ import annotations

import pytest

from pycontainerd import errdefs
from pycontainerd.shim.state import OPERATIONS, TRANSITIONS, Op, StateMachine, Status

C, R, P, S, D = Status.CREATED, Status.RUNNING, Status.PAUSED, Status.STOPPED, Status.DELETED

# What containerd's pkg/process/init_state.go accepts, written out by hand (not derived
# from the table under test).
ACCEPTS = {
    (Op.START, C), (Op.DELETE, C), (Op.DELETE, S),
    (Op.KILL, C), (Op.KILL, R), (Op.KILL, P),
    (Op.PAUSE, R), (Op.RESUME, P),
    (Op.EXEC, C), (Op.EXEC, R),
    (Op.UPDATE, C), (Op.UPDATE, R), (Op.UPDATE, P),
    (Op.RESIZE, C), (Op.RESIZE, R), (Op.RESIZE, P),
    (Op.CHECKPOINT, R), (Op.CHECKPOINT, P),
}
MOVES = {(C, R), (C, S), (C, D), (R, P), (R, S), (P, R), (P, S), (S, D)}


@pytest.mark.parametrize("state", list(Status), ids=lambda s: s.value)
@pytest.mark.parametrize("op", list(Op), ids=lambda o: o.value)
def test_operation_matrix(op: Op, state: Status) -> None:
    sm = StateMachine("task", state)
    if (op, state) in ACCEPTS:
        sm.check(op)
    elif op is Op.KILL:  # kill after exit: containerd's checkKillError says NotFound
        with pytest.raises(errdefs.NotFound, match="process already finished"):
            sm.check(op)
    else:
        with pytest.raises(errdefs.FailedPrecondition, match=f"cannot {op.value} task in {state.value} state"):
            sm.check(op)
    assert sm.status is state  # a check never moves


@pytest.mark.parametrize("to", list(Status), ids=lambda s: s.value)
@pytest.mark.parametrize("frm", list(Status), ids=lambda s: s.value)
def test_transition_matrix(frm: Status, to: Status) -> None:
    sm = StateMachine("task", frm)
    if (frm, to) in MOVES:
        sm.transition(to)
        assert sm.status is to
    else:
        with pytest.raises(errdefs.FailedPrecondition, match="invalid state transition"):
            sm.transition(to)
        assert sm.status is frm


def test_tables_cover_every_state_and_operation() -> None:
    assert set(TRANSITIONS) == set(Status)
    assert set(OPERATIONS) == set(Op)
    assert {(f, t) for f, ts in TRANSITIONS.items() for t in ts} == MOVES


def test_lifecycles() -> None:
    sm = StateMachine()
    for to in (R, P, R, S, D):
        sm.transition(to)
    assert sm.exited
    kill_before_start = StateMachine()
    kill_before_start.check(Op.KILL)
    kill_before_start.transition(S)
    assert kill_before_start.exited and not StateMachine().exited
