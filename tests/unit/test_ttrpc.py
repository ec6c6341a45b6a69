"""ttrpc: frames from hand-built bytes, the error mapping, and every client against every
server (blocking server in a thread, asyncio server; blocking and asyncio clients)."""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import threading
import time

import pytest
from google.rpc import status_pb2

from pycontainerd import errdefs
from pycontainerd.ttrpc import aio, wire
from pycontainerd.ttrpc.client import Client
from pycontainerd.ttrpc.reactor import Reactor
from pycontainerd.ttrpc.server import Deferred, Server

SVC = "test.v1.Echo"


# --- framing -------------------------------------------------------------------------------


def _pb_string(field: int, value: bytes) -> bytes:
    return bytes([field << 3 | 2, len(value)]) + value


def test_request_frame_matches_hand_built_bytes() -> None:
    payload = wire.encode_request("svc", "M", b"\x01\x02", timeout_nano=5, metadata=[("k", "v")])
    expected_body = (_pb_string(1, b"svc") + _pb_string(2, b"M") + _pb_string(3, b"\x01\x02")
                     + bytes([4 << 3 | 0, 5]) + _pb_string(5, _pb_string(1, b"k") + _pb_string(2, b"v")))
    assert payload == expected_body
    frame = wire.encode_frame(3, wire.TYPE_REQUEST, payload)
    assert frame[:10] == struct.pack(">IIBB", len(expected_body), 3, 1, 0)
    assert frame[10:] == expected_body


def test_response_with_status_from_hand_built_bytes() -> None:
    st = _pb_string(2, b"nope")  # google.rpc.Status{message="nope"} …
    st = bytes([1 << 3 | 0, 5]) + st  # … code = 5 (NOT_FOUND)
    body = _pb_string(1, st) + _pb_string(2, b"xy")
    resp = wire.decode_response(body)
    assert resp.status.code == 5 and resp.status.message == "nope" and resp.payload == b"xy"
    assert wire.encode_response(b"xy", status_pb2.Status(code=5, message="nope")) == body


def test_decoder_reassembles_split_and_coalesced_frames() -> None:
    f1 = wire.encode_frame(1, wire.TYPE_REQUEST, b"a" * 5)
    f2 = wire.encode_frame(3, wire.TYPE_REQUEST, b"")
    f3 = wire.encode_frame(5, wire.TYPE_RESPONSE, b"zz", flags=7)
    data = f1 + f2 + f3
    dec = wire.FrameDecoder()
    out = []
    for i in range(len(data)):  # one byte at a time
        out += dec.feed(data[i:i + 1])
    assert out == [(1, 1, 0, b"aaaaa"), (3, 1, 0, b""), (5, 2, 7, b"zz")]
    assert dec.buffered == 0
    assert wire.FrameDecoder().feed(data) == out


def test_decoder_skips_oversized_message_without_buffering_it() -> None:
    big = wire.MAX_MESSAGE + 10
    dec = wire.FrameDecoder()
    out = dec.feed(struct.pack(">IIBB", big, 7, 1, 0) + b"x" * 100)
    assert len(out) == 1 and isinstance(out[0][3], wire.Oversized) and out[0][0] == 7
    remaining = big - 100
    assert dec.feed(b"x" * (remaining - 1)) == []
    assert dec.feed(b"x" + wire.encode_frame(9, 1, b"ok")) == [(9, 1, 0, b"ok")]


def test_encode_frame_refuses_more_than_4_mib() -> None:
    with pytest.raises(ValueError):
        wire.encode_frame(1, 1, b"x" * (wire.MAX_MESSAGE + 1))


@pytest.mark.parametrize("cls", [errdefs.NotFound, errdefs.AlreadyExists, errdefs.FailedPrecondition,
                                 errdefs.InvalidArgument, errdefs.Unavailable, errdefs.NotImplementedYet,
                                 errdefs.DeadlineExceeded])
def test_errdefs_round_trip_through_status(cls) -> None:
    st = wire.status_from_exception(cls("container \"x\""))
    assert wire.CODE_NAMES[st.code] == cls.code
    back = wire.exception_from_status(st)
    assert type(back) is cls and str(back) == str(cls("container \"x\""))


def test_unknown_errors_and_codes() -> None:
    st = wire.status_from_exception(RuntimeError("boom"))
    assert st.code == wire.CODES["UNKNOWN"] and st.message == "boom"
    err = wire.exception_from_status(status_pb2.Status(code=13, message="internal thing"))
    assert isinstance(err, wire.RemoteError) and err.code == "INTERNAL" and str(err) == "internal thing"


def test_wrap_prefixes_the_message_and_keeps_the_code() -> None:
    wrapped = errdefs.wrap(errdefs.NotFound("container \"x\""), "failed to create shim task")
    assert type(wrapped) is errdefs.NotFound and str(wrapped) == 'failed to create shim task: container "x": not found'
    assert str(errdefs.wrap(errdefs.NotFound(), "p")) == "p: not found"
    remote = wire.exception_from_status(status_pb2.Status(code=2, message="OCI runtime create failed: boom"))
    wrapped = errdefs.wrap(remote, "failed to create shim task")
    assert isinstance(wrapped, wire.RemoteError) and wrapped.code == "UNKNOWN"
    assert str(wrapped) == "failed to create shim task: OCI runtime create failed: boom"
    assert str(remote) == "OCI runtime create failed: boom"  # the original is left as it was


def test_socket_path() -> None:
    assert wire.socket_path("unix:///run/x.sock") == "/run/x.sock"
    assert wire.socket_path("/run/x.sock") == "/run/x.sock"
    assert wire.socket_path("@abs") == "\0abs"


# --- a blocking server in a thread ---------------------------------------------------------


class ThreadedServer:
    """The shim's server running in a background thread (the test needs its own thread)."""

    def __init__(self, path: str) -> None:
        self.reactor = Reactor()
        self.server = Server(self.reactor)
        self.path = path
        self.parked: list[Deferred] = []
        self.calls: list[tuple[str, dict]] = []
        self.server.register(SVC, {
            "Echo": self.echo,
            "Fail": lambda p, ctx: (_ for _ in ()).throw(errdefs.NotFound(f"thing {p.decode()!r}")),
            "Crash": lambda p, ctx: 1 / 0,
            "Park": self.park,
            "Release": self.release,
        })
        self.server.listen(path)
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def echo(self, payload: bytes, ctx) -> bytes:
        self.calls.append((ctx.method, ctx.metadata))
        return payload

    def park(self, payload: bytes, ctx) -> Deferred:
        d = Deferred()
        self.parked.append(d)
        return d

    def release(self, payload: bytes, ctx) -> bytes:
        # answer parked calls in reverse order: responses need not follow request order
        for d in reversed(self.parked):
            d.resolve(b"released:" + payload)
        self.parked.clear()
        return b"ok"

    def _run(self) -> None:
        while not self._stop:
            self.reactor.run_once(0.05)

    def close(self) -> None:
        self._stop = True
        self.thread.join(5)
        self.server.close()
        self.reactor.close()


@pytest.fixture
def sock_dir(tmp_path):
    # unix socket paths must stay under 108 bytes: pytest's tmp_path can be long
    d = f"/tmp/ttrpc-test-{os.getpid()}-{os.urandom(3).hex()}"
    os.mkdir(d)
    yield d
    for name in os.listdir(d):
        os.unlink(os.path.join(d, name))
    os.rmdir(d)


@pytest.fixture
def threaded(sock_dir):
    s = ThreadedServer(os.path.join(sock_dir, "srv.sock"))
    yield s
    s.close()


def test_blocking_client_against_blocking_server(threaded) -> None:
    with Client(threaded.path) as c:
        assert c.call(SVC, "Echo", b"hi", metadata=[(wire.NAMESPACE_KEY, "ns1")]) == b"hi"
        with pytest.raises(errdefs.NotFound) as e:
            c.call(SVC, "Fail", b"x")
        assert str(e.value) == "thing 'x': not found"
        with pytest.raises(wire.RemoteError) as e2:
            c.call(SVC, "Crash", b"")
        assert e2.value.code == "UNKNOWN"
        with pytest.raises(errdefs.NotImplementedYet, match="service nope.Svc"):
            c.call("nope.Svc", "Echo", b"")
        with pytest.raises(errdefs.NotImplementedYet, match="method Nope"):
            c.call(SVC, "Nope", b"")
        assert c.call(SVC, "Echo", b"still fine") == b"still fine"
    assert threaded.calls[0] == ("Echo", {wire.NAMESPACE_KEY: ["ns1"]})


def test_deferred_answer_with_deadline(threaded) -> None:
    with Client(threaded.path) as c:
        t0 = time.monotonic()
        with pytest.raises(errdefs.DeadlineExceeded):
            c.call(SVC, "Park", b"", timeout=0.3)
        assert time.monotonic() - t0 < 3


def test_server_rejects_even_stream_ids_and_oversized_messages(threaded) -> None:
    s = socket.socket(socket.AF_UNIX)
    s.connect(threaded.path)
    s.settimeout(5)
    s.sendall(wire.encode_frame(2, wire.TYPE_REQUEST, wire.encode_request(SVC, "Echo", b"")))
    dec = wire.FrameDecoder()
    frames = []
    while not frames:
        frames = dec.feed(s.recv(4096))
    sid, mtype, _, body = frames[0]
    assert (sid, mtype) == (2, wire.TYPE_RESPONSE)
    assert wire.decode_response(body).status.code == wire.CODES["INVALID_ARGUMENT"]
    # oversized: header claims 4 MiB + 1; the server discards the body and says so
    s.sendall(struct.pack(">IIBB", wire.MAX_MESSAGE + 1, 5, 1, 0) + b"\0" * (wire.MAX_MESSAGE + 1))
    frames = []
    while not frames:
        frames = dec.feed(s.recv(4096))
    assert frames[0][0] == 5
    assert wire.decode_response(frames[0][3]).status.code == wire.CODES["RESOURCE_EXHAUSTED"]
    # and the connection still works
    s.sendall(wire.encode_frame(7, wire.TYPE_REQUEST, wire.encode_request(SVC, "Echo", b"ok")))
    frames = []
    while not frames:
        frames = dec.feed(s.recv(4096))
    assert wire.decode_response(frames[0][3]).payload == b"ok"
    s.close()


def test_server_serves_many_connections_at_once(threaded) -> None:
    clients = [Client(threaded.path) for _ in range(20)]
    try:
        for i, c in enumerate(clients):
            assert c.call(SVC, "Echo", str(i).encode()) == str(i).encode()
    finally:
        for c in clients:
            c.close()


def test_blocking_client_unavailable(sock_dir) -> None:
    with pytest.raises(errdefs.Unavailable):
        Client(os.path.join(sock_dir, "missing.sock"))


# --- asyncio client -----------------------------------------------------------------------


async def test_async_client_multiplexes_concurrent_calls(threaded) -> None:
    async with await aio.Client.connect(threaded.path) as c:
        parked = [asyncio.create_task(c.call(SVC, "Park", b"")) for _ in range(3)]
        echoes = await asyncio.gather(*(c.call(SVC, "Echo", str(i).encode()) for i in range(50)))
        assert echoes == [str(i).encode() for i in range(50)]
        for _ in range(100):
            if len(threaded.parked) == 3:
                break
            await asyncio.sleep(0.01)
        assert await c.call(SVC, "Release", b"go") == b"ok"
        assert await asyncio.gather(*parked) == [b"released:go"] * 3
        with pytest.raises(errdefs.NotFound):
            await c.call(SVC, "Fail", b"y")


async def test_async_client_timeout_then_late_answer_is_dropped(threaded) -> None:
    async with await aio.Client.connect(threaded.path) as c:
        with pytest.raises(errdefs.DeadlineExceeded):
            await c.call(SVC, "Park", b"", timeout=0.2)
        assert await c.call(SVC, "Echo", b"after") == b"after"


async def test_async_client_connection_loss_is_unavailable(threaded) -> None:
    c = await aio.Client.connect(threaded.path)
    closed = []
    c.add_close_callback(lambda: closed.append(True))
    pending = asyncio.create_task(c.call(SVC, "Park", b""))
    await asyncio.sleep(0.2)
    threaded.close()  # the server goes away (as a killed shim does)
    with pytest.raises(errdefs.Unavailable):
        await asyncio.wait_for(pending, 5)
    with pytest.raises(errdefs.Unavailable):
        await c.call(SVC, "Echo", b"")
    assert closed == [True]
    await c.close()
    assert closed == [True]


async def test_async_client_close_callbacks_run_without_the_opening_calls_log_fields(threaded) -> None:
    """A shim's connection is opened inside a Tasks/Create call; when the shim dies later,
    its close callbacks (which log the death) must not carry that old call's fields."""
    import structlog

    async def open_in_a_call():
        structlog.contextvars.bind_contextvars(request_id="r-old", method="/Tasks/Create")
        return await aio.Client.connect(threaded.path)

    c = await asyncio.create_task(open_in_a_call())  # a task: the fields stay in its context
    seen = []
    fired = asyncio.Event()

    def on_close():
        seen.append((structlog.contextvars.get_contextvars(), asyncio.current_task() is c._recv_task))
        fired.set()

    c.add_close_callback(on_close)
    threaded.close()  # the peer goes away: the receive loop notices and fires the callbacks
    await asyncio.wait_for(fired.wait(), 10)
    await c.close()
    assert seen == [({}, True)]


async def test_async_connect_to_nothing_is_unavailable(sock_dir) -> None:
    with pytest.raises(errdefs.Unavailable):
        await aio.Client.connect(os.path.join(sock_dir, "missing.sock"), timeout=1)


# --- asyncio server -----------------------------------------------------------------------


async def test_async_server_with_both_clients(sock_dir) -> None:
    srv = aio.Server()
    seen = []

    async def forward(payload: bytes, ctx: aio.CallContext) -> bytes:
        seen.append((payload, ctx.namespace))
        if payload == b"bad":
            raise errdefs.InvalidArgument("bad event")
        await asyncio.sleep(0.01)
        return b""

    srv.register("containerd.services.events.ttrpc.v1.Events", {"Forward": forward})
    path = os.path.join(sock_dir, "events.sock")
    await srv.start(path)
    try:
        async with await aio.Client.connect(path) as c:
            await asyncio.gather(*(c.call("containerd.services.events.ttrpc.v1.Events", "Forward", b"e%d" % i,
                                          metadata=[(wire.NAMESPACE_KEY, "default")]) for i in range(10)))
            with pytest.raises(errdefs.InvalidArgument, match="bad event"):
                await c.call("containerd.services.events.ttrpc.v1.Events", "Forward", b"bad")
            with pytest.raises(errdefs.NotImplementedYet):
                await c.call("containerd.services.events.ttrpc.v1.Events", "Nope", b"")

        def blocking() -> bytes:
            with Client(path) as bc:
                return bc.call("containerd.services.events.ttrpc.v1.Events", "Forward", b"sync")

        assert await asyncio.to_thread(blocking) == b""
    finally:
        await srv.close()
    assert sorted(p for p, _ in seen) == sorted([b"e%d" % i for i in range(10)] + [b"bad", b"sync"])
    assert ("e0".encode(), "default") in seen
    assert not os.path.exists(path)
