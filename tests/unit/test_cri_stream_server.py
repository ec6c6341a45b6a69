"""The streaming server's HTTP side, without root or a daemon: routing, tokens (unknown,
reused), upgrade refusals, TLS, the idle timeout, and port-forward (SPDY and WebSocket) to
a local TCP server through a host-network "pod" (a stand-in CRI service that only knows
one READY sandbox without a network namespace)."""

from __future__ import annotations

import asyncio
import subprocess
from dataclasses import dataclass

import pytest

from pycontainerd.cri.config import CRIConfig
from pycontainerd.cri.state import SandboxState
from pycontainerd.cri.streaming.server import StreamServer
from pycontainerd.cri.streaming.tokens import ExecRequest, PortForwardRequest
from tests.support.k8s_stream import RemoteCommand, SpdyPortForward, UpgradeRefused, WsPortForward, http_get


@dataclass
class _Sandbox:
    id: str
    netns_path: str = ""
    state: SandboxState = SandboxState.READY


class _Sandboxes:
    def __init__(self, *boxes: _Sandbox) -> None:
        self.boxes = {b.id: b for b in boxes}

    def find(self, sid: str):
        return self.boxes.get(sid)


class _Containers:
    def find(self, cid: str):
        return None


class FakeCRI:
    """Only what the server reads before a runner starts."""

    def __init__(self) -> None:
        self.sandboxes = _Sandboxes(_Sandbox("pod"))
        self.containers = _Containers()


async def _echo_server():
    async def handle(reader, writer):
        while data := await reader.read(65536):
            writer.write(data.upper())
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@pytest.fixture
async def echo():
    server, port = await _echo_server()
    yield port
    server.close()
    await server.wait_closed()


async def _server(**cfg) -> StreamServer:
    s = StreamServer(FakeCRI(), CRIConfig(**cfg))
    await s.start()
    return s


async def test_tokens_routes_and_refusals(echo):
    s = await _server()
    try:
        assert s.base_url.startswith("http://127.0.0.1:")
        url = await s.url("portforward", PortForwardRequest("pod", (echo,)))
        status, body = await http_get(f"{s.base_url}/portforward/bogus")
        assert status == 404 and "unknown, already used or expired" in body
        status, body = await http_get(f"{s.base_url}/logs/x")
        assert status == 404
        status, body = await http_get(url)                 # a plain GET consumes it: no upgrade
        assert status == 400 and "missing upgrade headers" in body
        status, body = await http_get(url)
        assert status == 404 and "already used" in body
        url = await s.url("exec", ExecRequest("gone", ("sh",), False, False, True, False))
        with pytest.raises(UpgradeRefused) as err:
            await RemoteCommand.connect(url)
        assert err.value.status == 404 and "container 'gone' not found" in err.value.body
        url = await s.url("portforward", PortForwardRequest("pod", ()))
        with pytest.raises(UpgradeRefused) as err:
            await SpdyPortForward.connect(url.replace("/portforward/", "/exec/"))   # wrong kind
        assert err.value.status == 404
    finally:
        await s.close()
    assert s.connections == 0


async def test_spdy_port_forward_with_tls(tmp_path, echo):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    s = await _server(enable_tls_streaming=True,
                      x509_key_pair_streaming={"tls_cert_file": str(cert), "tls_key_file": str(key)})
    try:
        assert s.base_url.startswith("https://127.0.0.1:")
        url = await s.url("portforward", PortForwardRequest("pod", ()))
        pf = await SpdyPortForward.connect(url)
        try:
            big = bytes(range(256)) * 2048                    # 512 KiB: many frames, past the windows
            reply, err = await pf.request(echo, big)
            assert reply == big.upper() and err == b""
            reply, err = await pf.request(1, b"x")             # nothing listens on port 1
            assert reply == b"" and b"failed to connect to localhost:1" in err
            reply, err = await pf.request(echo, b"still here")
            assert reply == b"STILL HERE"
        finally:
            await pf.aclose()
    finally:
        await s.close()


async def test_websocket_port_forward(echo):
    s = await _server()
    try:
        url = await s.url("portforward", PortForwardRequest("pod", (echo, 1)))
        ws = await WsPortForward.connect(url, [echo, 1])
        try:
            await ws.send(0, b"over websocket")
            for _ in range(200):
                if bytes(ws.data[0]) == b"OVER WEBSOCKET" and ws.errors[1]:
                    break
                await asyncio.sleep(0.05)
            assert bytes(ws.data[0]) == b"OVER WEBSOCKET"
            assert b"failed to connect to localhost:1" in bytes(ws.errors[1])
        finally:
            await ws.aclose()
        url = await s.url("portforward", PortForwardRequest("pod", (echo,)))
        with pytest.raises(UpgradeRefused) as err:
            await WsPortForward.connect(url, [echo + 1])          # not among the request's ports
        assert err.value.status == 400
    finally:
        await s.close()


async def test_idle_connection_is_closed(echo):
    s = await _server(stream_idle_timeout="300ms")
    try:
        url = await s.url("portforward", PortForwardRequest("pod", ()))
        pf = await SpdyPortForward.connect(url)
        await asyncio.wait_for(pf.conn.done.wait(), 30)        # nothing sent: the server hangs up
        await pf.aclose()
    finally:
        await s.close()


async def test_address_in_use_is_unavailable():
    from pycontainerd.errdefs import Unavailable

    first = await _server()
    try:
        port = first.base_url.rsplit(":", 1)[1]
        second = StreamServer(FakeCRI(), CRIConfig(stream_server_port=port))
        with pytest.raises(Unavailable, match="cannot listen"):
            await second.url("portforward", PortForwardRequest("pod", ()))
        await second.close()
    finally:
        await first.close()
