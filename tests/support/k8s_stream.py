"""Our small client of Kubernetes' streaming protocols (what kubelet's proxy, crictl and
kubectl speak to a CRI streaming server): remote command (exec/attach) and port-forward,
over SPDY/3.1 and WebSocket, on the codec of :mod:`pycontainerd.cri.streaming`.

Used by the unit, integration and interop tests and by ``bench/cri_stream.py``, against
our server and containerd's (the protocol is the same).

Example::

    rc = await RemoteCommand.connect(url, stdin=True, stdout=True, tty=True)   # SPDY, v4
    await rc.send(b"echo hi\\n"); await rc.resize(100, 30); await rc.close_stdin()
    result = await rc.wait()         # .stdout, .stderr, .status, .exit_code
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import ssl
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import h11

from pycontainerd.cri.streaming import protocol as p
from pycontainerd.cri.streaming.spdyconn import SpdyConnection, SpdyStream, StreamReset
from pycontainerd.cri.streaming.wsconn import WsConnection


class UpgradeRefused(Exception):
    """The server answered the upgrade with a plain HTTP response."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body.strip()}")
        self.status = status
        self.body = body


NETNS = ""
"""Network namespace (path) to connect from: set it when the server listens inside a
namespace the test process is not in (the socket is made on a thread that joined it)."""


def _connect_in(path: str, host: str, port: int) -> socket.socket:
    from pycontainerd.cri import netns

    def connect() -> socket.socket:
        s = socket.create_connection((host, port), timeout=10)
        s.setblocking(False)
        return s

    return netns.run_in(path, connect)


async def _open(url: str, ssl_context: ssl.SSLContext | None = None):
    u = urlsplit(url)
    secure = u.scheme in ("https", "wss")
    port = u.port or (443 if secure else 80)
    ctx = ssl_context if secure else None
    if secure and ctx is None:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if NETNS:
        sock = await asyncio.to_thread(_connect_in, NETNS, u.hostname, port)
        reader, writer = await asyncio.open_connection(sock=sock, ssl=ctx,
                                                       server_hostname=u.hostname if ctx else None)
    else:
        reader, writer = await asyncio.open_connection(u.hostname, port, ssl=ctx)
    target = u.path + (f"?{u.query}" if u.query else "")
    return reader, writer, u, target


async def _upgrade(url: str, headers: list[tuple[str, str]], ssl_context=None, method: str = "GET"):
    """Send an upgrade request; returns ``(reader, writer, response headers, leftover bytes)``
    after a 101, raises :class:`UpgradeRefused` otherwise."""
    reader, writer, u, target = await _open(url, ssl_context)
    conn = h11.Connection(h11.CLIENT)
    host = u.netloc
    writer.write(conn.send(h11.Request(method=method, target=target, headers=[("Host", host), *headers])))
    writer.write(conn.send(h11.EndOfMessage()))
    await writer.drain()
    body = bytearray()
    status = 0
    while True:
        ev = conn.next_event()
        if ev is h11.NEED_DATA:
            data = await reader.read(65536)
            if not data and status:
                break
            conn.receive_data(data)
            continue
        if isinstance(ev, h11.InformationalResponse) and ev.status_code == 101:
            hdrs = {k.decode().lower(): v.decode() for k, v in ev.headers}
            return reader, writer, hdrs, conn.trailing_data[0]
        if isinstance(ev, h11.Response):
            status = ev.status_code
        elif isinstance(ev, h11.Data):
            body += ev.data
        elif isinstance(ev, (h11.EndOfMessage, h11.ConnectionClosed)):
            break
    writer.close()
    raise UpgradeRefused(status, body.decode(errors="replace"))


async def spdy_connect(url: str, protocols: list[str], ssl_context=None) -> tuple[SpdyConnection, str, asyncio.Task]:
    """Upgrade to SPDY/3.1 offering ``protocols``; returns the client connection, the
    chosen protocol and the connection's reader task."""
    headers = [("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1")]
    headers += [(p.HEADER_PROTOCOL_VERSION, proto) for proto in protocols]
    reader, writer, hdrs, leftover = await _upgrade(url, headers, ssl_context)
    conn = SpdyConnection(reader, writer, server=False)

    async def run() -> None:
        if leftover:
            for frame in conn.frames.feed(leftover):
                await conn._dispatch(frame)
        await conn.run()

    task = asyncio.get_running_loop().create_task(run())
    return conn, hdrs.get(p.HEADER_PROTOCOL_VERSION.lower(), ""), task


async def ws_connect(url: str, protocols: list[str], ssl_context=None) -> tuple[WsConnection, str, asyncio.Task]:
    key = base64.b64encode(os.urandom(16)).decode()
    headers = [("Connection", "Upgrade"), ("Upgrade", "websocket"), ("Sec-WebSocket-Key", key),
               ("Sec-WebSocket-Version", "13")]
    if protocols:
        headers.append(("Sec-WebSocket-Protocol", ", ".join(protocols)))
    reader, writer, hdrs, leftover = await _upgrade(url, headers, ssl_context)
    ws = WsConnection(reader, writer, client=True)
    task = asyncio.get_running_loop().create_task(ws.run(leftover))
    return ws, hdrs.get("sec-websocket-protocol", ""), task


@dataclass
class Result:
    stdout: bytes = b""
    stderr: bytes = b""
    error: bytes = b""
    status: dict = field(default_factory=dict)

    @property
    def exit_code(self) -> int | None:
        return p.exit_code_of(self.status) if self.status else None


class RemoteCommand:
    """A remote-command session (exec or attach) as a client; :meth:`connect` picks SPDY
    (default) or WebSocket (``transport="ws"``)."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.err = bytearray()
        self.error = bytearray()
        self.protocol = ""
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self.finished = asyncio.Event()

    # --- opening ---------------------------------------------------------------------

    @classmethod
    async def connect(cls, url: str, *, stdin: bool = False, stdout: bool = True, stderr: bool = False,
                      tty: bool = False, transport: str = "spdy", protocols: list[str] | None = None,
                      ssl_context=None) -> RemoteCommand:
        if transport == "spdy":
            self: RemoteCommand = _SpdyRemoteCommand()
            await self._open(url, stdin, stdout, stderr, tty, protocols or [p.V4], ssl_context)
        else:
            self = _WsRemoteCommand()
            await self._open(url, stdin, stdout, stderr, tty, protocols or [p.V5, p.V4], ssl_context)
        return self

    # --- reading ---------------------------------------------------------------------

    def _got(self, kind: str, data: bytes) -> None:
        {p.STDOUT: self.out, p.STDERR: self.err, p.ERROR: self.error}[kind].extend(data)
        self._changed.set()

    async def read_until(self, needle: bytes, timeout: float = 30.0, stream: str = p.STDOUT) -> bytes:
        """Wait until ``needle`` appeared on ``stream``; returns everything read so far."""
        buf = self.out if stream == p.STDOUT else self.err

        async def wait() -> None:
            while needle not in buf:
                if self.finished.is_set():
                    raise EOFError(f"session ended before {needle!r} appeared; got {bytes(buf)!r}, "
                                   f"error stream {bytes(self.error)!r}")
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(wait(), timeout)
        return bytes(buf)

    async def wait(self, timeout: float = 60.0) -> Result:
        """Wait for the end of the session; the status parsed from the error stream."""
        await asyncio.wait_for(self.finished.wait(), timeout)
        status: dict = {}
        if self.error:
            try:
                status = json.loads(bytes(self.error))
            except ValueError:
                status = {"status": "Failure", "message": bytes(self.error).decode(errors="replace")}
        elif self.protocol not in (p.V4, p.V5, p.V4_BASE64):
            status = p.success_status()
        await self.aclose()
        return Result(bytes(self.out), bytes(self.err), bytes(self.error), status)

    async def aclose(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t

    # transport-specific
    async def send(self, data: bytes) -> None:
        raise NotImplementedError

    async def close_stdin(self) -> None:
        raise NotImplementedError

    async def resize(self, width: int, height: int) -> None:
        raise NotImplementedError

    async def abort(self) -> None:
        """Drop the connection without a goodbye (a client that vanished)."""
        raise NotImplementedError


class _SpdyRemoteCommand(RemoteCommand):
    async def _open(self, url, stdin, stdout, stderr, tty, protocols, ssl_context) -> None:
        self.conn, self.protocol, reader = await spdy_connect(url, protocols, ssl_context)
        self._tasks.append(reader)
        self.streams: dict[str, SpdyStream] = {}
        kinds = [p.ERROR]
        if stdin:
            kinds.append(p.STDIN)
        if stdout:
            kinds.append(p.STDOUT)
        if stderr and not tty:
            kinds.append(p.STDERR)
        if tty and self.protocol != p.V2:
            kinds.append(p.RESIZE)
        for kind in kinds:
            self.streams[kind] = await self.conn.open_stream({p.HEADER_STREAM_TYPE.lower(): [kind]})
        loop = asyncio.get_running_loop()
        readers = [loop.create_task(self._pull(kind)) for kind in (p.STDOUT, p.STDERR, p.ERROR) if kind in self.streams]
        self._tasks += readers

        async def done() -> None:
            await asyncio.wait(readers)
            self.finished.set()
            self._changed.set()
        self._tasks.append(loop.create_task(done()))

    async def _pull(self, kind: str) -> None:
        with contextlib.suppress(StreamReset):
            while chunk := await self.streams[kind].read():
                self._got(kind, chunk)

    async def send(self, data: bytes) -> None:
        await self.streams[p.STDIN].write(data)

    async def close_stdin(self) -> None:
        await self.streams[p.STDIN].close()

    async def resize(self, width: int, height: int) -> None:
        await self.streams[p.RESIZE].write(p.resize_message(width, height))

    async def abort(self) -> None:
        self.conn.writer.transport.abort()
        await self.aclose()

    async def aclose(self) -> None:
        await super().aclose()
        await self.conn.close()


class _WsRemoteCommand(RemoteCommand):
    async def _open(self, url, stdin, stdout, stderr, tty, protocols, ssl_context) -> None:
        self.ws, self.protocol, reader = await ws_connect(url, protocols, ssl_context)
        self._tasks.append(reader)
        self.base64 = self.protocol in (p.V4_BASE64, p.BASE64)
        self._tasks.append(asyncio.get_running_loop().create_task(self._pull()))

    async def _pull(self) -> None:
        names = {v: k for k, v in p.CHANNELS.items()}
        try:
            while (msg := await self.ws.recv()) is not None:
                channel, data = p.ws_decode(msg, base64_text=self.base64)
                if names.get(channel) in (p.STDOUT, p.STDERR, p.ERROR):
                    self._got(names[channel], data)
        finally:
            self.finished.set()
            self._changed.set()

    async def send(self, data: bytes) -> None:
        await self.ws.send(p.ws_encode(p.CHANNELS[p.STDIN], data, base64_text=self.base64))

    async def close_stdin(self) -> None:
        if self.protocol != p.V5:
            raise RuntimeError(f"{self.protocol} cannot close stdin alone (v5.channel.k8s.io can)")
        await self.ws.send(p.ws_close_message(p.CHANNELS[p.STDIN]))

    async def resize(self, width: int, height: int) -> None:
        await self.ws.send(p.ws_encode(p.CHANNELS[p.RESIZE], p.resize_message(width, height), base64_text=self.base64))

    async def abort(self) -> None:
        self.ws.writer.transport.abort()
        await self.aclose()

    async def aclose(self) -> None:
        await super().aclose()
        await self.ws.close()


# -- port-forward -------------------------------------------------------------------------

class SpdyPortForward:
    """Port-forward over SPDY: each :meth:`connection` is a data+error stream pair."""

    def __init__(self, conn: SpdyConnection, reader: asyncio.Task) -> None:
        self.conn = conn
        self._reader = reader
        self._next_request = 0

    @classmethod
    async def connect(cls, url: str, ssl_context=None) -> SpdyPortForward:
        conn, proto, reader = await spdy_connect(url, [p.PORT_FORWARD_V1], ssl_context)
        assert proto == p.PORT_FORWARD_V1, proto
        return cls(conn, reader)

    async def connection(self, port: int) -> tuple[SpdyStream, SpdyStream]:
        """``(data, error)`` streams of one forwarded connection to ``port``."""
        rid = str(self._next_request)
        self._next_request += 1
        base = {p.HEADER_PORT.lower(): [str(port)], p.HEADER_REQUEST_ID.lower(): [rid]}
        error = await self.conn.open_stream({**base, p.HEADER_STREAM_TYPE.lower(): [p.ERROR]})
        await error.close()                         # we only read the error stream
        data = await self.conn.open_stream({**base, p.HEADER_STREAM_TYPE.lower(): [p.DATA]})
        return data, error

    async def request(self, port: int, payload: bytes, timeout: float = 30.0) -> tuple[bytes, bytes]:
        """Send ``payload`` on a new connection, half-close, read until the pod closes:
        ``(reply, error text)``."""
        data, error = await self.connection(port)

        async def go() -> tuple[bytes, bytes]:
            if payload:
                await data.write(payload)
            await data.close()
            reply, err = await asyncio.gather(data.read_all(), error.read_all())
            return reply, err

        return await asyncio.wait_for(go(), timeout)

    async def aclose(self) -> None:
        await self.conn.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader


class WsPortForward:
    """Port-forward over WebSocket: the ports are fixed by the URL's ``ports`` query."""

    def __init__(self, ws: WsConnection, protocol: str, ports: list[int], reader: asyncio.Task) -> None:
        self.ws = ws
        self.protocol = protocol
        self.ports = ports
        self.data: dict[int, bytearray] = {i: bytearray() for i in range(len(ports))}
        self.errors: dict[int, bytearray] = {i: bytearray() for i in range(len(ports))}
        self._prefixed: set[int] = set()
        self._reader = reader
        self._pull_task = asyncio.get_running_loop().create_task(self._pull())
        self.finished = asyncio.Event()

    @classmethod
    async def connect(cls, url: str, ports: list[int], protocol: str = p.V4) -> WsPortForward:
        sep = "&" if "?" in url else "?"
        ws, proto, reader = await ws_connect(f"{url}{sep}ports={','.join(map(str, ports))}", [protocol])
        return cls(ws, proto, ports, reader)

    async def _pull(self) -> None:
        try:
            while (msg := await self.ws.recv()) is not None:
                channel, data = p.ws_decode(msg, base64_text=self.protocol == p.V4_BASE64)
                i, is_err = divmod(channel, 2)
                if channel not in self._prefixed:        # the port, little endian, comes first
                    self._prefixed.add(channel)
                    assert int.from_bytes(data[:2], "little") == self.ports[i], (channel, data)
                    data = data[2:]
                (self.errors if is_err else self.data)[i].extend(data)
        finally:
            self.finished.set()

    async def send(self, index: int, data: bytes) -> None:
        await self.ws.send(p.ws_encode(2 * index, data, base64_text=self.protocol == p.V4_BASE64))

    async def aclose(self) -> None:
        await self.ws.close()
        for t in (self._pull_task, self._reader):
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t


async def http_get(url: str, method: str = "GET") -> tuple[int, str]:
    """A plain GET (or ``method``; no upgrade): ``(status, body)``."""
    try:
        await _upgrade(url, [], method=method)
    except UpgradeRefused as exc:
        return exc.status, exc.body
    raise AssertionError("the server switched protocols without being asked to")


__all__ = ["NETNS", "RemoteCommand", "Result", "http_get", "SpdyPortForward", "UpgradeRefused", "WsPortForward", "spdy_connect",
           "ws_connect"]


# -- a real containerd with its CRI plugin (the other side of interop tests and the bench) --

CONTAINERD_CRI_CONFIG = """version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "{address}"
[ttrpc]
  address = "{address}.ttrpc"
[debug]
  address = "{base}/debug.sock"
  level = "info"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox_image}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{base}/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{certs}"
"""


def start_containerd_cri(base, sandbox_image: str, certs_dir: str, timeout: float = 60.0, *, netns: str = "",
                         conflist: str = ""):
    """Debian's containerd with its CRI plugin on temp dirs (never the system service),
    pulling from our plain-HTTP registry through ``certs_dir`` (a hosts.toml tree). Pods
    must use the host network unless ``conflist`` (a CNI conflist) is given; ``netns`` (a
    pinned network namespace) runs containerd inside it. Returns a
    :class:`tests.support.containerd.Containerd` (``stop()`` it)."""
    import shutil
    import subprocess
    import time
    from pathlib import Path

    from tests.support.containerd import Containerd

    base = Path(base)
    base.mkdir(parents=True, exist_ok=True)
    (base / "net.d").mkdir(exist_ok=True)
    if conflist:
        (base / "net.d" / "10-pods.conflist").write_text(conflist)
    handle = Containerd(base=base)
    cfg = base / "config.toml"
    cfg.write_text(CONTAINERD_CRI_CONFIG.format(root=base / "root", state=base / "state", address=handle.address,
                                                base=base, sandbox_image=sandbox_image, certs=certs_dir))
    binary = shutil.which("containerd")
    if binary is None:
        raise RuntimeError("Debian's containerd is not installed (the README's install command installs it)")
    log = open(base / "containerd.log", "ab")
    enter = ["nsenter", f"--net={netns}"] if netns else []
    handle.proc = subprocess.Popen([*enter, binary, "--config", str(cfg)], stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    log.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if handle.proc.poll() is not None:
            raise RuntimeError(f"containerd exited: {(base / 'containerd.log').read_text()[-2000:]}")
        if os.path.exists(handle.address):
            rc = subprocess.run(["ctr", "--address", handle.address, "--connect-timeout", "1s", "version"],
                                capture_output=True).returncode
            if rc == 0:
                return handle
        time.sleep(0.1)
    handle.stop()
    raise TimeoutError("containerd did not come up")
