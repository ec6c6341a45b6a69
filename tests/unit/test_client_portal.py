"""The private event loop the sync client runs on: results and errors cross unchanged,
async iterators and context managers become sync ones, and context variables (the lease)
last from one call to the next in the same thread."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading

import pytest

from pycontainerd.client._portal import Portal
from pycontainerd.client._syncbase import SyncWrapper, register, unwrap, wrap
from pycontainerd.errdefs import NotFound

var: contextvars.ContextVar[str | None] = contextvars.ContextVar("var", default=None)


@pytest.fixture
def portal():
    p = Portal()
    yield p
    p.close()


def test_call_returns_values_and_raises_typed_errors(portal):
    async def double(x):
        await asyncio.sleep(0)
        return 2 * x

    async def fail():
        raise NotFound("thing")

    assert portal.call(double(21)) == 42
    with pytest.raises(NotFound, match="thing: not found"):
        portal.call(fail())


def test_iterate_and_close_early(portal):
    closed = []

    async def gen():
        try:
            for i in range(10):
                yield i
        finally:
            closed.append(True)

    it = portal.iterate(gen(), lambda x: x * 10)
    assert [next(it), next(it)] == [0, 10]
    it.close()
    assert closed == [True]
    assert list(portal.iterate(gen())) == list(range(10))


def test_context_manager_and_context_variables_persist_between_calls(portal):
    @contextlib.asynccontextmanager
    async def using(value):
        token = var.set(value)
        try:
            yield value
        finally:
            var.reset(token)

    async def current():
        return var.get()

    with portal.context(using("lease-1")) as v:
        assert v == "lease-1"
        assert portal.call(current()) == "lease-1"
        seen = []
        t = threading.Thread(target=lambda: seen.append(portal.call(current())))
        t.start()
        t.join()
        assert seen == [None]  # another thread has its own context
    assert portal.call(current()) is None


def test_closed_portal_refuses_calls():
    p = Portal()
    p.close()

    async def nothing():
        return None

    coro = nothing()
    with pytest.raises(RuntimeError, match="closed"):
        p.submit(coro)
    coro.close()


class AsyncThing:
    def __init__(self, n):
        self.n = n

    async def get(self):
        return self.n


class Thing(SyncWrapper):
    pass


register(AsyncThing, Thing)


def test_wrap_unwrap(portal):
    a = AsyncThing(3)
    w = wrap([a, (a, 1), {"k": a}], portal)
    assert isinstance(w[0], Thing) and isinstance(w[1][0], Thing) and isinstance(w[2]["k"], Thing)
    assert w[0].n == 3  # plain attributes pass through
    assert w[0].get() == 3  # undeclared coroutine methods still work, synchronously
    assert unwrap(w[0]) is a and unwrap([w[0]]) == [a]
    assert w[0] == wrap(a, portal)
