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
import ssl

from ...errdefs import InvalidArgument, Unavailable
from ..config import parse_duration
from ...log import get_logger
from ...listen.http import HTTPServer, Upgrade
from .tokens import AttachRequest, ExecRequest, PortForwardRequest, Request, TokenCache

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
        if upgrade != "websocket" and not upgrade.startswith("spdy/3.1"):
            await x.respond(400, "unable to upgrade: missing upgrade headers in request "
                               "(want Upgrade: SPDY/3.1 or websocket)\n")
            return
        # SPDY, WebSocket, the command runners and port-forwarding: loaded by the first
        # stream, not with the daemon (most daemons never serve one)
        from . import sessions

        await (sessions.websocket if upgrade == "websocket" else sessions.spdy)(self.svc, x, req)

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


_KINDS = {"exec": ExecRequest, "attach": AttachRequest, "portforward": PortForwardRequest}
_METHODS = ("GET", "POST")


__all__ = ["StreamServer", "parse_duration"]
