"""The CRI streaming server: HTTP/1.1 on ``stream_server_address:stream_server_port`` (the
daemon's one HTTP server loop, :class:`pycontainerd.listen.http.HTTPServer`, with an upgrade handler)
(TLS with ``enable_tls_streaming``), serving the URLs that Exec, Attach and PortForward
return, each for GET and POST as Kubernetes' streaming server routes them (client-go's
SPDY executor, used by crictl, critest and kubelet, POSTs; WebSocket clients GET)::

    /exec/<token>         remote command: SPDY/3.1 upgrade or WebSocket
    /attach/<token>       remote command: SPDY/3.1 upgrade or WebSocket
    /portforward/<token>  SPDY/3.1 (portforward.k8s.io), WebSocket (?ports=80,8080) or
                          SPDY tunnelled in a WebSocket (SPDY/3.1+portforward.k8s.io)

Another method on those paths is answered ``405 Method Not Allowed``; any other path
``404 page not found``.
A token is consumed by the first request that presents it; an unknown, used or expired
token is answered ``404 Not Found`` with a text body saying so. A request that is neither
upgrade gets ``400``; a SPDY upgrade offering no protocol we speak gets ``403`` naming
both lists (kubelet's wording). A connection with no traffic either way for
``stream_idle_timeout`` is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl

from wsproto.utilities import generate_accept_token

from ...errdefs import InvalidArgument, Unavailable
from ..config import parse_duration
from ...log import get_logger
from ...listen.http import HTTPServer, Upgrade
from . import portforward, protocol as p
from .remotecommand import SpdyStreams, StreamOptions, StreamSetupError, WsStreams
from .runners import serve_attach, serve_exec
from .spdyconn import SpdyConnection
from .tokens import AttachRequest, ExecRequest, PortForwardRequest, Request, TokenCache
from .wsconn import WsConnection, WsTunnel

log = get_logger("cri.streaming")


class StreamServer:
    """The streaming server of one CRI service ``c`` (see the module doc).

    :meth:`start` binds; :attr:`base_url` is then ``http(s)://ADDR:PORT``; :meth:`url`
    registers a request and returns its URL; :meth:`close` stops listening and ends every
    connection.
    """

    def __init__(self, svc, config) -> None:
        self.svc = svc
        self.address = config.stream_server_address or "127.0.0.1"
        self.port = int(config.stream_server_port or 0)
        self.idle_timeout = parse_duration(config.stream_idle_timeout)
        self.tls = config.enable_tls_streaming
        self.cert_file = config.x509_key_pair_streaming.tls_cert_file
        self.key_file = config.x509_key_pair_streaming.tls_key_file
        self.tokens = TokenCache()
        self.base_url = ""
        self.http = HTTPServer("cri streaming", upgrade=self._exchange, idle_timeout=self.idle_timeout,
                               max_head=64 << 10)
        self._started: asyncio.Future | None = None

    # -- life --------------------------------------------------------------------------

    def _ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        if not (self.cert_file and self.key_file):
            raise InvalidArgument("enable_tls_streaming needs x509_key_pair_streaming.tls_cert_file and "
                                  "tls_key_file (generating a self-signed pair is not supported)")
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx

    async def start(self) -> None:
        """Bind and listen (once; later calls wait for the first)."""
        if self._started is None:
            self._started = asyncio.get_running_loop().create_future()
            try:
                ctx = self._ssl_context()
                await self.http.listen_tcp(self.address, self.port, ssl=ctx)
                self.base_url = f"{'https' if ctx else 'http'}://{self.http.address}"
                log.info("cri streaming server listening", url=self.base_url)
            except BaseException as exc:
                self._started.set_exception(exc)
                self._started.exception()
                self._started = None
                raise
            self._started.set_result(None)
        await self._started

    async def close(self) -> None:
        await self.http.close()

    async def url(self, kind: str, request: Request) -> str:
        """The URL of a new token for ``request``; ``kind`` is exec, attach or portforward.

        Raises :class:`~pycontainerd.errdefs.Unavailable` when the server cannot listen
        (address in use, TLS files unreadable), ResourceExhausted with too many tokens."""
        try:
            await self.start()
        except (OSError, ssl.SSLError) as exc:
            raise Unavailable(f"cri streaming server cannot listen on {self.address}:{self.port}: {exc}") from exc
        return f"{self.base_url}/{kind}/{self.tokens.insert(request)}"

    @property
    def connections(self) -> int:
        return self.http.connections

    # -- one request (a connection of its own) --------------------------------------------

    async def _exchange(self, x: Upgrade) -> None:
        parts = x.path.strip("/").split("/")
        if len(parts) != 2 or parts[0] not in _KINDS:
            await x.respond(404, f"404 page not found: {x.path}\n")
            return
        if x.method not in _METHODS:
            await x.respond(405, f"405 method not allowed: {x.method} {x.path} (GET or POST)\n",
                            [("Allow", "GET, POST")])
            return
        kind, token = parts
        req = self.tokens.consume(token)
        if req is None or not isinstance(req, _KINDS[kind]):
            await x.respond(404, f"token {token!r} for {kind} is unknown, already used or expired "
                               "(tokens are single use and live one minute): call the CRI again\n")
            return
        problem = self._check_target(req)
        if problem:
            await x.respond(404, problem + "\n")
            return
        upgrade = ",".join(x.headers.get("upgrade", [])).lower()
        if upgrade == "websocket":
            await self._websocket(x, req)
        elif upgrade.startswith("spdy/3.1"):
            await self._spdy(x, req)
        else:
            await x.respond(400, "unable to upgrade: missing upgrade headers in request "
                               "(want Upgrade: SPDY/3.1 or websocket)\n")

    # -- SPDY --------------------------------------------------------------------------

    async def _spdy(self, x: Upgrade, req: Request) -> None:
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
        runner = loop.create_task(self._feed_and_run(spdy_conn, x.pending))
        try:
            if isinstance(req, PortForwardRequest):
                await portforward.serve_spdy(spdy_conn, self._netns(req.sandbox_id), list(req.ports), req.sandbox_id)
                return
            streams = SpdyStreams(spdy_conn, chosen, _options(req))
            try:
                await streams.setup()
            except StreamSetupError as exc:
                log.info("streaming client did not open its streams", error=str(exc))
                await streams.aclose()
                await spdy_conn.close()
                return
            await self._run_command(req, streams)
        finally:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await runner
            await spdy_conn.close()

    @staticmethod
    async def _feed_and_run(spdy_conn: SpdyConnection, pending: bytes) -> None:
        if pending:
            for frame in spdy_conn.frames.feed(pending):
                await spdy_conn._dispatch(frame)
        await spdy_conn.run()

    # -- WebSocket ---------------------------------------------------------------------

    async def _websocket(self, x: Upgrade, req: Request) -> None:
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
                    await portforward.serve_spdy(spdy_conn, self._netns(req.sandbox_id), list(req.ports),
                                                 req.sandbox_id)
                finally:
                    spdy_runner.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await spdy_runner
                return
            if isinstance(req, PortForwardRequest):
                await portforward.serve_ws(ws, protocol, self._netns(req.sandbox_id), ports, req.sandbox_id)
                return
            streams = WsStreams(ws, protocol, _options(req))
            await streams.setup()
            await self._run_command(req, streams)
        finally:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await runner
            await ws.close()

    # -- dispatch ----------------------------------------------------------------------

    async def _run_command(self, req: Request, streams) -> None:
        try:
            if isinstance(req, ExecRequest):
                await serve_exec(self.svc, req.container_id, list(req.cmd), streams)
            else:
                await serve_attach(self.svc, req.container_id, streams)
        finally:
            await streams.aclose()

    def _check_target(self, req: Request) -> str:
        """Why ``req`` can no longer be served (its container or pod went away since the
        token was issued); ``""`` when it can."""
        from ..state import ContainerState, SandboxState

        if isinstance(req, PortForwardRequest):
            sb = self.svc.sandboxes.find(req.sandbox_id)
            if sb is None:
                return f"pod sandbox {req.sandbox_id!r} not found"
            if sb.state is not SandboxState.READY:
                return f"pod sandbox {req.sandbox_id!r} is not ready"
            return ""
        ct = self.svc.containers.find(req.container_id)
        if ct is None:
            return f"container {req.container_id!r} not found"
        if ct.state is not ContainerState.RUNNING:
            return f"container {req.container_id!r} is not running ({ct.state.name})"
        return ""

    def _netns(self, sandbox_id: str) -> str:
        sb = self.svc.sandboxes.find(sandbox_id)
        return sb.netns_path if sb is not None else ""


_KINDS = {"exec": ExecRequest, "attach": AttachRequest, "portforward": PortForwardRequest}
_METHODS = ("GET", "POST")


def _options(req: ExecRequest | AttachRequest) -> StreamOptions:
    return StreamOptions(stdin=req.stdin, stdout=req.stdout, stderr=req.stderr, tty=req.tty)


__all__ = ["StreamServer", "parse_duration"]
