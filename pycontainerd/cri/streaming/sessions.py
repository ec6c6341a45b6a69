"""The streaming protocols behind the streaming server's URLs, once a request passed its
routing and token checks (:mod:`.server`): the SPDY/3.1 and WebSocket upgrades, and what runs
on them — exec and attach (:mod:`.runners` over :mod:`.remotecommand`), port-forward
(:mod:`.portforward`). :mod:`.server` imports this module with the first stream it serves,
so the daemon does not load wsproto, the SPDY codec and the runners until then.
"""

from __future__ import annotations

import asyncio
import contextlib

from wsproto.utilities import generate_accept_token

from ...listen.http import Upgrade
from ...log import get_logger
from . import portforward, protocol as p
from .remotecommand import SpdyStreams, StreamOptions, StreamSetupError, WsStreams
from .runners import serve_attach, serve_exec
from .spdyconn import SpdyConnection
from .tokens import AttachRequest, ExecRequest, PortForwardRequest, Request
from .wsconn import WsConnection, WsTunnel

log = get_logger("cri.streaming")


# -- SPDY ----------------------------------------------------------------------------------


async def spdy(svc, x: Upgrade, req: Request) -> None:
    """Serve ``req`` over SPDY/3.1 on the upgraded connection ``x`` (remote command or
    port-forward), or answer ``403`` when no protocol version is shared."""
    supported = p.SPDY_PORT_FORWARD if isinstance(req, PortForwardRequest) else p.SPDY_REMOTE_COMMAND
    offered = x.headers.get(p.HEADER_PROTOCOL_VERSION.lower(), [])
    chosen = p.negotiate(offered, supported)
    if chosen is None:
        await x.respond(403, f"unable to upgrade: unable to negotiate protocol: client supports {offered}, "
                           f"server supports {list(supported)}\n")
        return
    await x.switch([("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1"), (p.HEADER_PROTOCOL_VERSION, chosen)])
    spdy_conn = SpdyConnection(x.reader, x.writer, server=True)
    loop = asyncio.get_running_loop()
    runner = loop.create_task(_feed_and_run(spdy_conn, x.pending))
    try:
        if isinstance(req, PortForwardRequest):
            await portforward.serve_spdy(spdy_conn, _netns(svc, req.sandbox_id), list(req.ports), req.sandbox_id)
            return
        streams = SpdyStreams(spdy_conn, chosen, _options(req))
        try:
            await streams.setup()
        except StreamSetupError as exc:
            log.info("streaming client did not open its streams", error=str(exc))
            await streams.aclose()
            await spdy_conn.close()
            return
        await _run_command(svc, req, streams)
    finally:
        await _cancelled(runner)
        await spdy_conn.close()


async def _feed_and_run(spdy_conn: SpdyConnection, pending: bytes) -> None:
    if pending:
        for frame in spdy_conn.frames.feed(pending):
            await spdy_conn._dispatch(frame)
    await spdy_conn.run()


# -- WebSocket -----------------------------------------------------------------------------


async def websocket(svc, x: Upgrade, req: Request) -> None:
    """Serve ``req`` over a WebSocket (or SPDY tunnelled in one, for port-forward), after
    checking the handshake and the ``ports`` query."""
    key = (x.headers.get("sec-websocket-key") or [""])[0]
    if not key or (x.headers.get("sec-websocket-version") or [""])[0] != "13":
        await x.respond(400, "bad websocket handshake: Sec-WebSocket-Key and Sec-WebSocket-Version: 13 required\n")
        return
    offered = x.headers.get("sec-websocket-protocol", [])
    if isinstance(req, PortForwardRequest):
        supported = p.WS_PORT_FORWARD
    else:
        supported = p.WS_REMOTE_COMMAND
    chosen = p.negotiate(offered, supported)
    if chosen is None and offered:
        await x.respond(403, f"unable to upgrade: unable to negotiate protocol: client supports {offered}, "
                           f"server supports {list(supported)}\n")
        return
    ports: list[int] = []
    if isinstance(req, PortForwardRequest) and chosen != p.PORT_FORWARD_TUNNEL:
        try:
            ports = [int(n) for v in x.query.get("ports", []) for n in v.split(",") if n.strip()]
        except ValueError:
            await x.respond(400, "bad ports query parameter: comma-separated port numbers expected\n")
            return
        bad = [n for n in ports if not 0 < n < 65536 or (req.ports and n not in req.ports)]
        if not ports or bad:
            await x.respond(400, f"port-forward over websocket needs ?ports=… among {list(req.ports)}; "
                               f"got {ports or 'none'}\n")
            return
    hdrs = [("Upgrade", "websocket"), ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", generate_accept_token(key.encode()).decode())]
    if chosen:
        hdrs.append(("Sec-WebSocket-Protocol", chosen))
    await x.switch(hdrs)
    protocol = chosen or p.V1
    ws = WsConnection(x.reader, x.writer, client=False)
    loop = asyncio.get_running_loop()
    runner = loop.create_task(ws.run(x.pending))
    try:
        if protocol == p.PORT_FORWARD_TUNNEL:
            tunnel = WsTunnel(ws)
            spdy_conn = SpdyConnection(tunnel, tunnel, server=True)
            spdy_runner = loop.create_task(spdy_conn.run())
            try:
                await portforward.serve_spdy(spdy_conn, _netns(svc, req.sandbox_id), list(req.ports),
                                             req.sandbox_id)
            finally:
                await _cancelled(spdy_runner)
            return
        if isinstance(req, PortForwardRequest):
            await portforward.serve_ws(ws, protocol, _netns(svc, req.sandbox_id), ports, req.sandbox_id)
            return
        streams = WsStreams(ws, protocol, _options(req))
        await streams.setup()
        await _run_command(svc, req, streams)
    finally:
        await _cancelled(runner)
        await ws.close()


# -- dispatch ------------------------------------------------------------------------------


async def _run_command(svc, req: Request, streams) -> None:
    try:
        if isinstance(req, ExecRequest):
            await serve_exec(svc, req.container_id, list(req.cmd), streams)
        else:
            await serve_attach(svc, req.container_id, streams)
    finally:
        await streams.aclose()


async def _cancelled(task: asyncio.Task) -> None:
    """Cancel ``task`` (a connection's reader) and wait for it to end, whatever it raises."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


def _netns(svc, sandbox_id: str) -> str:
    sb = svc.sandboxes.find(sandbox_id)
    return sb.netns_path if sb is not None else ""


def _options(req: ExecRequest | AttachRequest) -> StreamOptions:
    return StreamOptions(stdin=req.stdin, stdout=req.stdout, stderr=req.stderr, tty=req.tty)


__all__ = ["spdy", "websocket"]
