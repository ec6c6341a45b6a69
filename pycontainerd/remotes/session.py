"""One registry conversation: hosts, requests, auth retries, redirects, error mapping.

:meth:`RegistrySession.send` is containerd's ``request.doWithRetries``: an httpx auth flow
(:class:`RegistryAuth`) authorizes every hop for its host, follows the redirects httpx builds
(at most 10; httpx drops the ``Authorization`` header towards another origin and the flow
re-adds one only when the authorizer has a handler for the new host, so a 307 to a blob
store on another host never sees registry credentials) and sends the request again after a
401 the authorizer can answer; ``send`` retries a 405 to a manifest HEAD (as a GET) and
408/429 — at most 5 retries in all. Connection failures become
:class:`~pycontainerd.errdefs.Unavailable`.

Plain HTTP is used only for hosts the caller allows (``plain_http=True`` for all, or a
collection of ``host[:port]`` names), like ``ctr --plain-http``; everything else is HTTPS.
"""

from __future__ import annotations

import asyncio
import enum
import json
import ssl
from collections.abc import AsyncGenerator, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

import httpx

from pycontainerd import __version__
from pycontainerd.errdefs import NotImplementedYet, Unavailable
from pycontainerd.log import get_logger
from pycontainerd.remotes import reference as refmod
from pycontainerd.remotes.auth import Authorizer, CredentialsFunc
from pycontainerd.remotes.errors import BODY_EXCERPT, Unauthorized, UnexpectedStatus

log = get_logger("remotes")

USER_AGENT = f"pycontainerd/{__version__}"
MAX_REDIRECTS = 10
MAX_RETRIES = 5

ContentFactory = Callable[[], "bytes | AsyncIterator[bytes]"]
"""Makes a request body afresh for every (re)try."""


class Capability(enum.Flag):
    PULL = enum.auto()
    RESOLVE = enum.auto()
    PUSH = enum.auto()
    ALL = PULL | RESOLVE | PUSH


@dataclass(frozen=True)
class RegistryHost:
    """Where to send requests for one registry domain (containerd's ``RegistryHost``)."""

    host: str
    scheme: str = "https"
    path: str = "/v2"
    capabilities: Capability = Capability.ALL
    headers: Mapping[str, str] = field(default_factory=dict)

    def url(self, *parts: str) -> str:
        p = "/".join(s.strip("/") for s in (self.path, *parts) if s.strip("/"))
        trailing = "/" if parts and parts[-1].endswith("/") else ""
        return f"{self.scheme}://{self.host}/{p}{trailing}"


HostsFunc = Callable[[str], Sequence[RegistryHost]]


def default_hosts(plain_http: bool | Collection[str] = False) -> HostsFunc:
    """One host per domain, ``docker.io`` → ``registry-1.docker.io``; HTTP only where allowed."""

    def hosts(domain: str) -> Sequence[RegistryHost]:
        host = refmod.registry_host(domain)
        if plain_http is True:
            scheme = "http"
        elif plain_http and (host in plain_http or domain in plain_http):
            scheme = "http"
        else:
            scheme = "https"
        return [RegistryHost(host=host, scheme=scheme)]

    return hosts


def repository_scope(repository: str, push: bool = False) -> str:
    """``repository:<name>:pull`` or ``...:pull,push`` (containerd's ``RepositoryScope``)."""
    return f"repository:{repository}:pull" + (",push" if push else "")


def _registry_errors(body: bytes) -> list[dict]:
    try:
        doc = json.loads(body[:BODY_EXCERPT])
    except ValueError:
        return []
    errs = doc.get("errors") if isinstance(doc, dict) else None
    return [e for e in errs if isinstance(e, dict)] if isinstance(errs, list) else []


def _url_for_message(url: httpx.URL) -> str:
    # never echo query strings (upload state, signed blob URLs) into messages
    return str(url.copy_with(query=None, fragment=None))


_PLAIN_HTTP_REASONS = frozenset({"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG",
                                  "HTTP_REQUEST", "UNKNOWN_PROTOCOL"})
"""OpenSSL's reasons when the bytes that came back to a TLS ClientHello are not TLS (an
HTTP response: ``WRONG_VERSION_NUMBER`` in OpenSSL 1.1/3.0, ``RECORD_LAYER_FAILURE`` or
``PACKET_LENGTH_TOO_LONG`` in later ones)."""


def _transport_error(url: httpx.URL, exc: httpx.TransportError) -> str:
    """The reason for a failed request; says what to do when an HTTPS request reached a
    registry that speaks plain HTTP (the usual local ``docker-registry``)."""
    if url.scheme == "https":
        cause: BaseException | None = exc
        while cause is not None:
            if isinstance(cause, ssl.SSLError) and getattr(cause, "reason", None) in _PLAIN_HTTP_REASONS:
                host = url.netloc.decode()
                return (f"the registry {host} answered plain HTTP to an HTTPS request; to talk to it over "
                        f"plain HTTP use --plain-http (pyctr, ctr), plain_http=True (the client library) or "
                        f'a hosts.toml with server = "http://{host}" (the CRI registry config_path)')
            cause = cause.__cause__ or cause.__context__
    return f"{type(exc).__name__}: {exc}"


async def unexpected_status(resp: httpx.Response, context: str = "") -> UnexpectedStatus:
    """An :class:`UnexpectedStatus` (Unauthorized for 401/403) describing ``resp``; reads
    (and closes) at most 64 KB of its body."""
    body = b""
    try:
        if resp.is_stream_consumed:
            try:
                body = resp.content
            except httpx.ResponseNotRead:
                body = b""
        else:
            async for chunk in resp.aiter_bytes():
                body += chunk
                if len(body) >= BODY_EXCERPT:
                    break
    except httpx.HTTPError:
        pass
    finally:
        await resp.aclose()
    errors = _registry_errors(body)
    method = resp.request.method
    url = _url_for_message(resp.request.url)
    msg = f"unexpected status from {method} request to {url}: {resp.status_code} {resp.reason_phrase}"
    if errors:
        msg += " - Server message: " + "; ".join(
            f"{str(e.get('code', '')).lower()}: {e.get('message', '')}".strip(": ") for e in errors
        )
    if context:
        msg = f"{context}: {msg}"
    cls = Unauthorized if resp.status_code in (401, 403) else UnexpectedStatus
    return cls(msg, status_code=resp.status_code, method=method, url=url, body=body, registry_errors=errors)


class RegistrySession:
    """Shared state of one resolver: the httpx client, the authorizer and the hosts.

    ``transport`` is injected for tests (``httpx.MockTransport``); otherwise httpx's default.
    """

    def __init__(
        self,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        client: httpx.AsyncClient | None = None,
        credentials: CredentialsFunc | None = None,
        headers: Mapping[str, str] | None = None,
        hosts: HostsFunc | None = None,
        plain_http: bool | Collection[str] = False,
        timeout: float | httpx.Timeout = httpx.Timeout(30.0, connect=10.0),
    ) -> None:
        self._own_client = client is None
        self.client = client or httpx.AsyncClient(transport=transport, timeout=timeout, follow_redirects=False)
        self.headers = {"User-Agent": USER_AGENT, **dict(headers or {})}
        self.authorizer = Authorizer(self.client, credentials, {"User-Agent": self.headers["User-Agent"]})
        self.hosts = hosts or default_hosts(plain_http)

    async def aclose(self) -> None:
        if self._own_client:
            await self.client.aclose()

    def hosts_for(self, domain: str, capability: Capability) -> list[RegistryHost]:
        return [h for h in self.hosts(domain) if capability in h.capabilities]

    async def send(
        self,
        method: str,
        url: str,
        *,
        host: RegistryHost | None = None,
        headers: Mapping[str, str] | None = None,
        scopes: Sequence[str] = (),
        content: ContentFactory | None = None,
        stream: bool = True,
        anonymous: bool = False,
    ) -> httpx.Response:
        """Send with auth retries and redirects; return the final response (any status).

        The response is open (streaming) when ``stream`` is true: the caller must
        ``aclose()`` it. Raises Unavailable on connection errors and Unauthorized when the
        authorizer rejects a challenge outright. ``anonymous`` requests (a descriptor's
        alternative ``urls``, an upload moved to another host) never carry credentials.
        """
        hdrs = {**self.headers, **(dict(host.headers) if host else {}), **dict(headers or {})}
        responses: list[httpx.Response] = []
        while True:
            flow = RegistryAuth(self, method, url, hdrs, scopes, content, anonymous, responses)
            resp = await self._send_flow(flow, stream)
            retry = False
            if len(responses) <= MAX_RETRIES:
                if resp.status_code == 405 and method == "HEAD" and "/manifests/" in url:
                    method = "GET"
                    retry = True
                elif resp.status_code in (408, 429):
                    retry = True
                    await asyncio.sleep(min(0.1 * len(responses), 1.0))
            if not retry:
                return resp
            await resp.aclose()

    async def _send_flow(self, flow: RegistryAuth, stream: bool) -> httpx.Response:
        first = flow.build(flow.method, flow.url, flow.headers)
        try:
            resp = await self.client.send(first, auth=flow, stream=True, follow_redirects=False)
        except httpx.TransportError as exc:
            failed = _failed_request(exc, first)
            raise Unavailable(
                f"failed to do request: {failed.method} {_url_for_message(failed.url)}: "
                f"{_transport_error(failed.url, exc)}"
            ) from exc
        except httpx.TooManyRedirects as exc:  # the client's own limit on redirects and retries together
            raise Unavailable(f"too many redirects and retries: {first.method} {_url_for_message(first.url)}") from exc
        if not stream:
            try:
                await resp.aread()
            except httpx.TransportError as exc:
                await resp.aclose()
                raise Unavailable(
                    f"failed to read response: {resp.request.method} {_url_for_message(resp.request.url)}: "
                    f"{type(exc).__name__}"
                ) from exc
            finally:
                await resp.aclose()
        return resp


def _failed_request(exc: httpx.TransportError, default: httpx.Request) -> httpx.Request:
    """The hop that failed (a redirect's target, say), else the first request."""
    try:
        return exc.request
    except RuntimeError:  # raised without a request
        return default


@dataclass
class RegistryAuth(httpx.Auth):
    """One registry request as an httpx auth flow (containerd's ``doWithRetries`` 401 arm
    and its redirect check).

    Every hop is authorized for its own host: httpx builds each redirect
    (``response.next_request``: the target, the method a 303 turns into, no
    ``Authorization`` header towards another origin) and this flow asks the authorizer for
    that host's header, so a 307 to a blob store on another host never sees registry
    credentials. At most :data:`MAX_REDIRECTS` hops. A 401 that the authorizer can answer
    (:meth:`~pycontainerd.remotes.auth.Authorizer.add_responses`, which parses the
    challenge) starts the request again from its first URL. Final responses are appended to
    ``responses``, which :meth:`RegistrySession.send` shares across its own retries.
    """

    session: RegistrySession
    method: str
    url: str
    headers: Mapping[str, str]
    scopes: Sequence[str]
    content: ContentFactory | None
    anonymous: bool
    responses: list[httpx.Response]

    def build(self, method: str, url: str | httpx.URL, headers: Mapping[str, str]) -> httpx.Request:
        """A request with a fresh body from the content factory (a stream is read once)."""
        body = self.content() if self.content is not None else None
        return self.session.client.build_request(method, url, headers=headers, content=body)

    async def _authorize(self, request: httpx.Request) -> None:
        if self.anonymous:
            request.headers.pop("Authorization", None)
        else:
            await self.session.authorizer.authorize(request, self.scopes)
        log.debug("do request", method=request.method, url=_url_for_message(request.url))

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        hops = 0
        while True:
            await self._authorize(request)
            response = yield request
            nxt = response.next_request
            if nxt is not None:
                if hops == MAX_REDIRECTS:
                    raise Unavailable(
                        f"stopped after {MAX_REDIRECTS} redirects: {self.method} {_url_for_message(httpx.URL(self.url))}"
                    )
                hops += 1
                if nxt.method == request.method and self.content is not None:
                    nxt = self.build(nxt.method, nxt.url, nxt.headers)  # 307/308 send the body again
                request = nxt
                continue
            self.responses.append(response)
            if response.status_code != 401 or self.anonymous or len(self.responses) > MAX_RETRIES:
                return
            try:
                await self.session.authorizer.add_responses(self.responses, self.scopes)
            except NotImplementedYet:
                return  # no challenge this client can answer: the 401 stands
            request = self.build(self.method, self.url, self.headers)
            hops = 0
