"""The shim's event publisher: envelopes, order under failures, retries, eviction, and a
real ttrpc Forward into an asyncio server."""

from __future__ import annotations

import asyncio
import os

import pytest

from pycontainerd import errdefs
from pycontainerd.api.events import task_pb2 as events
from pycontainerd.api.services.ttrpc.events.v1 import events_pb2
from pycontainerd.shim import events as shim_events
from pycontainerd.shim import proto as pb
from pycontainerd.shim.events import Publisher
from pycontainerd.ttrpc import aio
from pycontainerd.ttrpc.reactor import Reactor


class FakeClient:
    def __init__(self, owner) -> None:
        self.owner = owner
        self.closed = False

    def call(self, service, method, payload, timeout=None, metadata=()):
        assert (service, method) == ("containerd.services.events.ttrpc.v1.Events", "Forward")
        if self.owner.failures:
            self.owner.failures -= 1
            raise errdefs.Unavailable("daemon restarting")
        self.owner.sent.append(events_pb2.ForwardRequest.FromString(payload).envelope)
        return b""

    def close(self):
        self.closed = True


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def setup():
    clock = Clock()
    r = Reactor(clock=clock)
    state = type("S", (), {"failures": 0, "sent": []})()
    pub = Publisher(r, "default", "/nonexistent.ttrpc", connect=lambda a: FakeClient(state))
    yield r, clock, state, pub
    r.close()


def test_envelope() -> None:
    env = shim_events.envelope("k8s.io", "/tasks/exit", pb.TaskExit(container_id="c", exit_status=3), now_ns=5)
    assert (env.namespace, env.topic, env.timestamp.to_ns()) == ("k8s.io", "/tasks/exit", 5)
    assert env.event.type_url == "containerd.events.TaskExit"
    assert events.TaskExit.FromString(env.event.value).exit_status == 3


def test_order_is_kept_across_retries(setup) -> None:
    r, clock, state, pub = setup
    state.failures = 2
    for topic in ("/tasks/create", "/tasks/start", "/tasks/exit"):
        pub.publish(topic, pb.TaskStart(container_id="c"))
    r.run_once(0)  # first attempt fails (reconnect once, fails again): retry in 1 s
    assert state.sent == [] and pub.pending == 3
    clock.now += 1.0
    r.run_once(0)
    assert [e.topic for e in state.sent] == ["/tasks/create", "/tasks/start", "/tasks/exit"]
    assert pub.pending == 0


def test_an_event_is_evicted_after_five_retries(setup) -> None:
    r, clock, state, pub = setup
    state.failures = 1000
    pub.publish("/tasks/exit", pb.TaskExit(container_id="c"))
    r.run_once(0)
    for _ in range(6):
        clock.now += 10
        r.run_once(0)
    assert pub.pending == 0 and state.sent == []
    state.failures = 0
    pub.publish("/tasks/delete", pb.TaskDelete(container_id="c"))
    r.run_once(0)
    assert [e.topic for e in state.sent] == ["/tasks/delete"]


async def test_forward_over_real_ttrpc() -> None:
    d = f"/tmp/pcd-ev-{os.getpid()}-{os.urandom(3).hex()}"
    os.makedirs(d)
    got = []

    async def forward(payload: bytes, ctx) -> bytes:
        got.append(events_pb2.ForwardRequest.FromString(payload).envelope)
        return b""

    srv = aio.Server()
    srv.register("containerd.services.events.ttrpc.v1.Events", {"Forward": forward})
    await srv.start(f"{d}/d.sock.ttrpc")
    r = Reactor()
    pub = Publisher(r, "default", f"{d}/d.sock.ttrpc")
    try:
        pub.publish("/tasks/start", pb.TaskStart(container_id="c", pid=7))
        pub.publish("/tasks/exit", pb.TaskExit(container_id="c", pid=7))
        # the shim's loop is blocking: run it off the event loop the server lives on
        await asyncio.to_thread(r.run_once, 0)
        assert [(e.namespace, e.topic) for e in got] == [("default", "/tasks/start"), ("default", "/tasks/exit")]
    finally:
        pub.close()
        r.close()
        await srv.close()
        os.rmdir(d)


def test_publish_binary_when_there_is_no_ttrpc_socket(tmp_path) -> None:
    import stat
    import sys

    record = tmp_path / "published"
    binary = tmp_path / "publisher"
    binary.write_text(f"""#!{sys.executable} -S
import sys
data = sys.stdin.buffer.read()
with open({str(record)!r}, "ab") as f:
    f.write((" ".join(sys.argv[1:]) + "\\n").encode() + data + b"\\n")
""")
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    r = Reactor()
    pub = Publisher(r, "default", str(tmp_path / "missing.sock.ttrpc"), address=str(tmp_path / "missing.sock"),
                    publish_binary=str(binary))
    try:
        pub.publish("/tasks/oom", pb.TaskOOM(container_id="c9"))
        r.run_once(0)
    finally:
        r.close()
    head, _, body = record.read_bytes().partition(b"\n")
    assert head.decode() == f"--address {tmp_path / 'missing.sock'} publish --topic /tasks/oom --namespace default"
    from google.protobuf import any_pb2

    a = any_pb2.Any.FromString(body[:-1])
    assert a.type_url == "containerd.events.TaskOOM" and events.TaskOOM.FromString(a.value).container_id == "c9"
