"""Port-forward: connect to ``localhost:PORT`` inside the pod's network namespace and copy
bytes both ways, for SPDY (one data + one error stream per connection, paired by
``requestID``) and WebSocket (a data/error channel pair per port of the ``ports`` query).

The socket is created and connected on a short-lived thread that has joined the pod's
netns (:func:`pycontainerd.cri.netns.run_in`); a socket keeps the namespace it was created
in, so asyncio then uses it from the daemon's own thread without the daemon ever leaving
its namespace. A host-network pod (no netns) connects from the daemon's namespace. A port
nobody listens on gets a message on the error stream/channel; other ports and connections
are not affected.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

from ...errdefs import ContainerdError
from ...log import get_logger
from .. import netns
from . import protocol as p
from .spdyconn import SpdyConnection, SpdyStream, StreamReset
from .wsconn import WsConnection

log = get_logger("cri.streaming")

CONNECT_TIMEOUT = 10.0
CHUNK = 256 * 1024


def _connect(port: int) -> socket.socket:
    errors = []
    for family, addr in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        s = socket.socket(family, socket.SOCK_STREAM)
        s.settimeout(CONNECT_TIMEOUT)
        try:
            s.connect((addr, port))
        except OSError as exc:
            s.close()
            errors.append(f"{'IPv4' if family == socket.AF_INET else 'IPv6'}: {exc.strerror or exc}")
            continue
        s.setblocking(False)
        return s
    raise ConnectionRefusedError(", ".join(errors))


async def connect_in_pod(netns_path: str, port: int) -> socket.socket:
    """A connected, non-blocking socket to ``localhost:port`` in the namespace at
    ``netns_path`` (the daemon's own when empty). Raises ConnectionError/OSError, or
    :class:`~pycontainerd.errdefs.FailedPrecondition` when the namespace is gone."""
    if not netns_path:
        return await asyncio.to_thread(_connect, port)
    return await asyncio.to_thread(netns.run_in, netns_path, lambda: _connect(port))


def _error_text(port: int, netns_path: str, pod_id: str, exc: BaseException) -> str:
    """kubelet's streaming library's wording (``error forwarding port P to pod ID, uid :``,
    the uid empty behind the CRI), then what went wrong."""
    where = f" inside namespace {netns_path!r}" if netns_path else ""
    return f"error forwarding port {port} to pod {pod_id}, uid : failed to connect to localhost:{port}{where}: {exc}"


async def _sock_to(sock: socket.socket, send) -> None:
    loop = asyncio.get_running_loop()
    while True:
        data = await loop.sock_recv(sock, CHUNK)
        if not data:
            return
        await send(data)


async def _to_sock(sock: socket.socket, recv) -> None:
    loop = asyncio.get_running_loop()
    while data := await recv():
        await loop.sock_sendall(sock, data)
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)


async def _pipe(sock: socket.socket, recv, send, on_pod_eof) -> None:
    """Copy both ways until the pod side closes (then ``on_pod_eof``) or the client's
    side ends and the pod has answered everything."""
    loop = asyncio.get_running_loop()
    down = loop.create_task(_sock_to(sock, send))
    up = loop.create_task(_to_sock(sock, recv))
    try:
        with contextlib.suppress(ConnectionError, OSError, StreamReset):
            await down
        await on_pod_eof()
    finally:
        for t in (up, down):
            t.cancel()
        for t in (up, down):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        sock.close()


# -- SPDY ------------------------------------------------------------------------------

async def serve_spdy(conn: SpdyConnection, netns_path: str, ports: list[int], pod_id: str = "") -> None:
    """Serve port-forward streams until the client disconnects."""
    pairs: dict[str, dict[str, SpdyStream]] = {}
    tasks: set[asyncio.Task] = set()
    loop = asyncio.get_running_loop()
    try:
        while (st := await conn.accept()) is not None:
            kind = st.header(p.HEADER_STREAM_TYPE)
            rid = st.header(p.HEADER_REQUEST_ID)
            port_text = st.header(p.HEADER_PORT)
            if kind not in (p.DATA, p.ERROR) or not port_text.isdigit():
                await st.send_reset()
                continue
            pair = pairs.setdefault(rid, {})
            pair[kind] = st
            if len(pair) == 2:
                del pairs[rid]
                t = loop.create_task(_forward_spdy(netns_path, pod_id, int(port_text), ports, pair[p.DATA],
                                                       pair[p.ERROR]))
                tasks.add(t)
                t.add_done_callback(tasks.discard)
    finally:
        for t in list(tasks):
            t.cancel()
        for t in list(tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        await conn.close()


async def _forward_spdy(netns_path: str, pod_id: str, port: int, allowed: list[int], data: SpdyStream,
                        error: SpdyStream) -> None:
    async def fail(message: str) -> None:
        with contextlib.suppress(StreamReset):
            await error.write(message.encode())
            await error.close()
        await data.close()

    if allowed and port not in allowed:
        await fail(f"port {port} was not requested in PortForward (ports {allowed})")
        return
    try:
        sock = await connect_in_pod(netns_path, port)
    except (OSError, ContainerdError) as exc:
        log.info("port-forward connect failed", port=port, error=str(exc))
        await fail(_error_text(port, netns_path, pod_id, exc))
        return

    async def recv() -> bytes:
        try:
            return await data.read()
        except StreamReset:
            return b""

    async def pod_eof() -> None:
        await data.close()
        await error.close()

    await _pipe(sock, recv, data.write, pod_eof)


# -- WebSocket -------------------------------------------------------------------------

async def serve_ws(ws: WsConnection, protocol: str, netns_path: str, ports: list[int], pod_id: str = "") -> None:
    """Forward ``ports`` (from the query) on channel pairs until every port's connection
    ended or the client disconnects."""
    b64 = protocol == p.V4_BASE64
    loop = asyncio.get_running_loop()
    inboxes: dict[int, asyncio.Queue[bytes]] = {i: asyncio.Queue() for i in range(len(ports))}

    async def send(channel: int, data: bytes) -> None:
        await ws.send(p.ws_encode(channel, data, base64_text=b64))

    async def read_loop() -> None:
        try:
            while (msg := await ws.recv()) is not None:
                try:
                    channel, data = p.ws_decode(msg, base64_text=b64)
                except ValueError:
                    continue
                if channel % 2 == 0 and channel // 2 in inboxes and data:
                    inboxes[channel // 2].put_nowait(data)
        finally:
            for q in inboxes.values():
                q.put_nowait(b"")

    async def one(i: int, port: int) -> None:
        data_ch, err_ch = 2 * i, 2 * i + 1
        with contextlib.suppress(ConnectionError):
            await send(data_ch, p.port_prefix(port))
            await send(err_ch, p.port_prefix(port))
        first = True

        async def recv() -> bytes:
            nonlocal first
            data = await inboxes[i].get()
            if first and len(data) >= 2 and int.from_bytes(data[:2], "little") == port:
                data = data[2:]            # a client may echo the port prefix first
                first = False
                if not data:
                    return await recv()
            first = False
            return data

        try:
            sock = await connect_in_pod(netns_path, port)
        except (OSError, ContainerdError) as exc:
            with contextlib.suppress(ConnectionError):
                await send(err_ch, _error_text(port, netns_path, pod_id, exc).encode())
            return

        async def nothing() -> None:
            return None

        await _pipe(sock, recv, lambda d: send(data_ch, d), nothing)

    reader = loop.create_task(read_loop())
    workers = [loop.create_task(one(i, port)) for i, port in enumerate(ports)]
    try:
        gone = loop.create_task(ws.done.wait())
        everything = loop.create_task(asyncio.wait(workers))
        await asyncio.wait({gone, everything}, return_when=asyncio.FIRST_COMPLETED)
        for t in (gone, everything):
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
    finally:
        for t in [reader, *workers]:
            t.cancel()
        for t in [reader, *workers]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        await ws.close()


__all__ = ["connect_in_pod", "serve_spdy", "serve_ws"]
