"""SPDY/3.1 codec, WebSocket channel framing, tokens and the remote-command transports of
the CRI streaming server, with no root and no daemon: frames built by hand byte by byte,
round trips, and our client against the transports over a loopback socket."""

from __future__ import annotations

import asyncio
import json
import struct
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pycontainerd.cri.config import CRIConfig, parse_duration
from pycontainerd.cri.streaming import protocol as p
from pycontainerd.cri.streaming import spdy
from pycontainerd.cri.streaming.remotecommand import SpdyStreams, StreamOptions, WsStreams
from pycontainerd.cri.streaming.spdyconn import SpdyConnection
from pycontainerd.cri.streaming.tokens import ExecRequest, TokenCache
from pycontainerd.cri.streaming.wsconn import WsConnection
from pycontainerd.errdefs import InvalidArgument, ResourceExhausted
from tests.support.k8s_stream import RemoteCommand

# -- SPDY frames ------------------------------------------------------------------------


def test_dictionary_shape():
    d = spdy.DICTIONARY
    assert len(d) == 1423
    assert d.startswith(b"\x00\x00\x00\x07options\x00\x00\x00\x04head")
    assert b"\x00\x00\x00\x06origin100101201" in d
    assert d.endswith(b"charset=iso-8859-1,utf-,*,enq=0.")


def test_data_frame_bytes_by_hand():
    raw = spdy.encode(spdy.DataFrame(5, b"hello", spdy.FLAG_FIN))
    assert raw == bytes([0, 0, 0, 5, 0x01, 0, 0, 5]) + b"hello"
    (frame,) = spdy.FrameReader().feed(raw)
    assert frame == spdy.DataFrame(5, b"hello", 1) and frame.fin


def test_control_frames_bytes_by_hand():
    assert spdy.encode(spdy.Ping(7)) == bytes([0x80, 3, 0, 6, 0, 0, 0, 4, 0, 0, 0, 7])
    assert spdy.encode(spdy.RstStream(3, spdy.CANCEL)) == bytes([0x80, 3, 0, 3, 0, 0, 0, 8, 0, 0, 0, 3, 0, 0, 0, 5])
    assert spdy.encode(spdy.WindowUpdate(1, 65536)) == bytes([0x80, 3, 0, 9, 0, 0, 0, 8, 0, 0, 0, 1, 0, 1, 0, 0])
    assert spdy.encode(spdy.GoAway(9, 0)) == bytes([0x80, 3, 0, 7, 0, 0, 0, 8, 0, 0, 0, 9, 0, 0, 0, 0])
    settings = spdy.encode(spdy.Settings([(0, spdy.SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20)]))
    assert settings == bytes([0x80, 3, 0, 4, 0, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 7, 0, 0x10, 0, 0])


def test_syn_stream_constructed_like_a_go_client():
    """A SYN_STREAM assembled by hand the way spdystream writes one: header block
    compressed by an independent zlib stream with the dictionary, sync-flushed."""
    block = struct.pack(">I", 1) + struct.pack(">I", 10) + b"streamtype" + struct.pack(">I", 5) + b"error"
    comp = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, spdy.DICTIONARY)
    payload = comp.compress(block) + comp.flush(zlib.Z_SYNC_FLUSH)
    body = struct.pack(">IIBB", 1, 0, 0, 0) + payload
    raw = struct.pack(">HHI", 0x8000 | 3, 1, len(body)) + body
    # the same compressor continues for the next block (one context per connection)
    block2 = struct.pack(">I", 1) + struct.pack(">I", 10) + b"streamtype" + struct.pack(">I", 6) + b"stdout"
    payload2 = comp.compress(block2) + comp.flush(zlib.Z_SYNC_FLUSH)
    body2 = struct.pack(">IIBB", 3, 0, 0, 0) + payload2
    raw2 = struct.pack(">HHI", 0x8000 | 3, 1, len(body2)) + body2
    reader = spdy.FrameReader()
    frames = reader.feed(raw[:7]) + reader.feed(raw[7:] + raw2)       # split mid-header too
    assert [(f.stream_id, f.headers) for f in frames] == [(1, {"streamtype": ["error"]}),
                                                          (3, {"streamtype": ["stdout"]})]


def test_header_blocks_use_one_context_per_direction():
    tx, rx = spdy.HeaderCodec(), spdy.HeaderCodec()
    frames = [spdy.SynStream(1, {"streamtype": ["stdin"], "port": ["80"]}),
              spdy.SynReply(1, {}),
              spdy.HeadersFrame(1, {"x": ["a", "b"]}, spdy.FLAG_FIN),
              spdy.SynStream(3, {"streamtype": ["stdin"], "port": ["80"]})]
    raw = b"".join(spdy.encode(f, tx) for f in frames)
    assert len(spdy.encode(frames[0], spdy.HeaderCodec())) > len(spdy.encode(frames[3], tx)) - 8  # reuse
    out = spdy.FrameReader(rx).feed(raw)
    assert out[0] == frames[0] and out[1] == frames[1] and out[2] == frames[2]
    assert out[2].headers == {"x": ["a", "b"]}


@given(st.lists(st.tuples(st.integers(1, 2**31 - 1), st.binary(max_size=300), st.integers(0, 1)), max_size=20),
       st.integers(1, 64))
def test_round_trip_any_split(frames, cut):
    tx = spdy.HeaderCodec()
    objs = []
    for sid, data, fin in frames:
        objs.append(spdy.DataFrame(sid, data, fin))
        objs.append(spdy.SynStream(sid, {"streamtype": [data.hex()[:10] or "x"]}, fin))
    raw = b"".join(spdy.encode(f, tx) for f in objs)
    reader = spdy.FrameReader()
    got = []
    for i in range(0, len(raw), cut):
        got += reader.feed(raw[i:i + cut])
    assert got == objs


def test_bad_input_is_refused():
    with pytest.raises(spdy.SpdyProtocolError, match="version 2"):
        spdy.FrameReader().feed(bytes([0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1]))
    with pytest.raises(spdy.SpdyProtocolError, match="exceeds"):
        spdy.FrameReader(max_length=10).feed(bytes([0, 0, 0, 1, 0, 0, 0, 11]))
    with pytest.raises(spdy.SpdyProtocolError, match="header block"):
        spdy.FrameReader().feed(bytes([0x80, 3, 0, 2, 0, 0, 0, 6, 0, 0, 0, 1, 0xFF, 0xFF]))   # SYN_REPLY, junk block
    # unknown control types (CREDENTIAL = 10) are skipped
    assert spdy.FrameReader().feed(bytes([0x80, 3, 0, 10, 0, 0, 0, 0])) == []


# -- WebSocket channels, statuses, resize -------------------------------------------------


def test_ws_channel_framing():
    assert p.ws_encode(1, b"out") == b"\x01out"
    assert p.ws_decode(b"\x02err") == (2, b"err")
    assert p.ws_encode(0, b"hi", base64_text=True) == "0aGk="
    assert p.ws_decode("1aGk=", base64_text=True) == (1, b"hi")
    assert p.ws_decode("\x00hi\n") == (0, b"hi\n")         # text frames of binary-protocol clients
    assert p.ws_close_message(0) == b"\xff\x00"
    assert p.port_prefix(8080) == b"\x90\x1f"
    with pytest.raises(ValueError):
        p.ws_decode(b"")


def test_exit_status_documents():
    assert p.exit_status(0) == {"metadata": {}, "status": "Success"}
    st3 = p.exit_status(3, ["sh", "-c", "exit 3"])
    assert st3["reason"] == "NonZeroExitCode"
    assert st3["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    assert p.exit_code_of(json.loads(p.status_bytes(st3, p.V4))) == 3
    assert p.status_bytes(p.success_status(), p.V2) == b""


def test_resize_decoder_handles_splits():
    dec = p.ResizeDecoder()
    msg = p.resize_message(100, 30) + p.resize_message(80, 24)
    assert dec.feed(msg[:7]) == []
    assert dec.feed(msg[7:]) == [p.TerminalSize(100, 30), p.TerminalSize(80, 24)]


def test_negotiate():
    assert p.negotiate(["v4.channel.k8s.io, v3.channel.k8s.io"], p.SPDY_REMOTE_COMMAND) == p.V4
    assert p.negotiate(["v3.channel.k8s.io"], p.SPDY_REMOTE_COMMAND) == p.V3
    assert p.negotiate(["v9.channel.k8s.io"], p.SPDY_REMOTE_COMMAND) is None


# -- tokens and config ---------------------------------------------------------------------


def test_tokens_single_use_and_expiring():
    now = [0.0]
    cache = TokenCache(ttl=60, max_in_flight=2, clock=lambda: now[0])
    req = ExecRequest("c", ("sh",), False, False, True, False)
    t1 = cache.insert(req)
    assert cache.consume(t1) == req
    assert cache.consume(t1) is None            # reused
    t2 = cache.insert(req)
    cache.insert(req)
    with pytest.raises(ResourceExhausted):
        cache.insert(req)
    now[0] = 61
    assert cache.consume(t2) is None            # expired
    assert len(cache) == 0
    assert cache.consume("nope") is None


def test_config_streaming_keys():
    assert parse_duration("4h0m0s") == 4 * 3600
    assert parse_duration("1m30s") == 90 and parse_duration("250ms") == 0.25
    with pytest.raises(InvalidArgument, match="bad duration"):
        parse_duration("4 hours")
    cfg = CRIConfig(stream_idle_timeout="30s", x509_key_pair_streaming={"tls_cert_file": "/c", "tls_key_file": "/k"},
                    enable_tls_streaming=True)
    assert cfg.x509_key_pair_streaming.tls_key_file == "/k"
    with pytest.raises(InvalidArgument, match="tls_cert_file"):
        CRIConfig(enable_tls_streaming=True)
    with pytest.raises(InvalidArgument, match="unknown option"):
        CRIConfig(x509_key_pair_streaming={"cert": "x"})


# -- transports end to end over loopback ------------------------------------------------------


async def _echo_runner(streams) -> None:
    """A stand-in for exec: stdin upper-cased to stdout, a resize reported on stderr
    (or stdout with a tty), exit code = number of lines read."""
    lines = 0
    resize = asyncio.ensure_future(streams.resizes.get())
    while True:
        read = asyncio.ensure_future(streams.read_stdin())
        done, _ = await asyncio.wait({read, resize}, return_when=asyncio.FIRST_COMPLETED)
        if resize in done:
            size = resize.result()
            await streams.write(p.STDOUT if streams.opts.tty else p.STDERR, f"size {size.width}x{size.height}\n".encode())
            resize = asyncio.ensure_future(streams.resizes.get())
        data = await read
        if not data:
            break
        if data == b"quit\n":                       # v4 WebSocket cannot close stdin alone
            break
        lines += data.count(b"\n")
        await streams.write(p.STDOUT, data.upper())
    resize.cancel()
    await streams.finish(p.exit_status(lines))


async def _serve_once(transport: str, opts: StreamOptions):
    """A one-connection server running ``_echo_runner``; returns (url, server, done)."""
    done = asyncio.get_running_loop().create_future()

    async def handle(reader, writer):
        import h11

        conn = h11.Connection(h11.SERVER)
        while True:
            ev = conn.next_event()
            if ev is h11.NEED_DATA:
                conn.receive_data(await reader.read(4096))
                continue
            break
        hdrs = {k.decode().lower(): v.decode() for k, v in ev.headers}
        if transport == "spdy":
            proto = p.negotiate([v.decode() for k, v in ev.headers if k.lower() == b"x-stream-protocol-version"],
                                p.SPDY_REMOTE_COMMAND)
            writer.write(conn.send(h11.InformationalResponse(status_code=101, headers=[
                ("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1"), ("X-Stream-Protocol-Version", proto)])))
            c = SpdyConnection(reader, writer, server=True)
            runner = asyncio.ensure_future(c.run())
            streams = SpdyStreams(c, proto, opts)
            await streams.setup(timeout=10)
        else:
            from wsproto.utilities import generate_accept_token

            proto = p.negotiate([hdrs.get("sec-websocket-protocol", "")], p.WS_REMOTE_COMMAND)
            writer.write(conn.send(h11.InformationalResponse(status_code=101, headers=[
                ("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Protocol", proto),
                ("Sec-WebSocket-Accept", generate_accept_token(hdrs["sec-websocket-key"].encode()).decode())])))
            ws = WsConnection(reader, writer, client=False)
            runner = asyncio.ensure_future(ws.run(conn.trailing_data[0]))
            streams = WsStreams(ws, proto, opts)
            await streams.setup()
        try:
            await _echo_runner(streams)
        finally:
            runner.cancel()
            done.set_result(True)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return f"http://127.0.0.1:{port}/exec/x", server, done


@pytest.mark.parametrize("transport,protocols", [("spdy", [p.V4]), ("ws", [p.V5]), ("ws", [p.V4_BASE64])])
async def test_remote_command_transport(transport, protocols):
    opts = StreamOptions(stdin=True, stdout=True, stderr=True, tty=False)
    url, server, done = await _serve_once(transport, opts)
    try:
        rc = await RemoteCommand.connect(url, stdin=True, stdout=True, stderr=True, transport=transport,
                                         protocols=protocols)
        assert rc.protocol == protocols[0]
        await rc.send(b"one\n")
        assert b"ONE\n" in await rc.read_until(b"ONE\n")
        await rc.send(b"two\n" * 40000)            # 160 kB: more than a SPDY window
        await rc.read_until(b"TWO\n" * 40000)
        if protocols[0] == p.V4_BASE64:
            await rc.send(b"quit\n")
        else:
            await rc.close_stdin()
        result = await rc.wait()
        assert result.exit_code == 40001
        assert result.status["reason"] == "NonZeroExitCode"
        await asyncio.wait_for(done, 10)
    finally:
        server.close()
        await server.wait_closed()


async def test_spdy_tty_resize_and_client_abort():
    opts = StreamOptions(stdin=True, stdout=True, stderr=False, tty=True)
    url, server, done = await _serve_once("spdy", opts)
    try:
        rc = await RemoteCommand.connect(url, stdin=True, stdout=True, tty=True)
        await rc.resize(123, 45)
        await rc.read_until(b"size 123x45\n")
        await rc.abort()                         # the server sees stdin EOF and ends
        await asyncio.wait_for(done, 10)
    finally:
        server.close()
        await server.wait_closed()


async def test_spdy_unread_data_is_bounded(monkeypatch):
    """A peer that ignores our windows (Go's spdystream does not do flow control) cannot
    make us buffer without bound: past MAX_BUFFERED unread bytes the stream is reset."""
    from pycontainerd.cri.streaming import spdyconn

    monkeypatch.setattr(spdyconn, "MAX_BUFFERED", 100_000)
    accepted = asyncio.get_running_loop().create_future()

    async def handle(reader, writer):
        conn = SpdyConnection(reader, writer, server=True)
        task = asyncio.ensure_future(conn.run())
        st = await conn.accept()
        accepted.set_result(st)                    # never read
        await conn.done.wait()
        task.cancel()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    client = SpdyConnection(reader, writer, server=False)
    runner = asyncio.ensure_future(client.run())
    try:
        st = await client.open_stream({"streamtype": ["stdin"]})
        with pytest.raises(spdyconn.StreamReset):
            for _ in range(100):
                await st.write(b"x" * 10_000)
                await asyncio.sleep(0)
            await asyncio.wait_for(st.read(), 10)     # the reset arrives
        server_side = await accepted
        assert server_side.reset
    finally:
        await client.close()
        runner.cancel()
        server.close()
        await server.wait_closed()


async def test_spdy_session_ping_settings_and_windows():
    """Raw frames against a server session: a client PING is echoed; SYN_STREAM gets a
    SYN_REPLY; reading 64 KiB makes the server reopen the windows (WINDOW_UPDATE for the
    stream and the session); a duplicate stream id is refused with RST_STREAM."""
    got_stream = asyncio.get_running_loop().create_future()

    async def handle(reader, writer):
        conn = SpdyConnection(reader, writer, server=True)
        task = asyncio.ensure_future(conn.run())
        st = await conn.accept()
        got_stream.set_result(await st.read_all())
        await conn.done.wait()
        task.cancel()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
    tx, frames = spdy.HeaderCodec(), spdy.FrameReader()

    pending: list = []

    async def expect(kind):
        while True:
            while pending:
                f = pending.pop(0)
                if isinstance(f, kind):
                    return f
            pending.extend(frames.feed(await asyncio.wait_for(reader.read(65536), 10)))

    try:
        writer.write(spdy.encode(spdy.Settings([(0, spdy.SETTINGS_MAX_CONCURRENT_STREAMS, 100)])))
        writer.write(spdy.encode(spdy.Ping(1)))
        assert (await expect(spdy.Ping)).ping_id == 1
        writer.write(spdy.encode(spdy.SynStream(1, {"streamtype": ["stdin"]}), tx))
        assert (await expect(spdy.SynReply)).stream_id == 1
        writer.write(spdy.encode(spdy.SynStream(1, {"streamtype": ["stdin"]}), tx))
        rst = await expect(spdy.RstStream)
        assert (rst.stream_id, rst.status) == (1, spdy.PROTOCOL_ERROR)
        writer.write(spdy.encode(spdy.DataFrame(1, b"y" * 35_000)))
        updates = [await expect(spdy.WindowUpdate) for _ in range(2)]
        assert {(u.stream_id, u.delta) for u in updates} == {(0, 35_000), (1, 35_000)}
        writer.write(spdy.encode(spdy.DataFrame(1, b"y" * 35_000, spdy.FLAG_FIN)))
        assert await asyncio.wait_for(got_stream, 10) == b"y" * 70_000
    finally:
        writer.close()
        server.close()
        await server.wait_closed()
