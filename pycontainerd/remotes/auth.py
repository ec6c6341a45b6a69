"""Registry authentication as containerd 1.6 does it (``remotes/docker/authorizer.go``,
``auth/``).

Flow: a request goes out without credentials; a 401 carries ``WWW-Authenticate``
challenges (:func:`parse_challenges`, Bearer preferred over Basic); the :class:`Authorizer`
sets up a handler for that host and the request is retried:

* **Basic**: only with credentials for the host; each request then carries them.
* **Bearer**: a token from the challenge's ``realm`` for ``service`` and the request's
  scopes (``repository:<name>:pull[,push]``). With a secret, containerd first POSTs an OAuth2
  form (``grant_type=password``, or ``refresh_token`` when the username is empty, i.e. an
  identity token; ``client_id=containerd-client``) and falls back to a GET on 400/401/404
  (and 405 when a username is set), and also when the POST answers 2xx with something that
  is not a token (an HTML login page, a JSON without a token): that server does not speak
  the OAuth form. Without a secret it GETs anonymously. The GET sends basic auth when there
  is a secret. Either answer may carry the token as ``token`` or ``access_token``. Tokens are
  cached per host and scope set until they expire (``expires_in``, 60 s when absent, as the
  token spec says; renewed a little early, by at most a tenth of the lifetime, so a
  2-second token is used for its 2 seconds); concurrent requests for the same scopes share
  one token request.

A challenge carrying ``error=`` for the same request twice in a row means the token or
credentials were refused: :class:`~.errors.Unauthorized`. Credentials come from
:func:`make_credentials`: explicit ones first, then a docker ``config.json``
(``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json``, ``auths`` entries with
``auth`` (base64 ``user:password``), ``username``/``password``, or ``identitytoken``).
Credential helpers (``credsStore``/``credHelpers``) are not run.

Secrets never reach a log line or an error message.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from pycontainerd.errdefs import InvalidArgument, NotImplementedYet, Unavailable, quote
from pycontainerd.log import get_logger
from pycontainerd.remotes.errors import Unauthorized, UnexpectedStatus

log = get_logger("remotes")

CredentialsFunc = Callable[[str], "tuple[str, str] | None"]
"""``host`` (``name[:port]`` as in the URL) → ``(username, secret)`` or None."""

OAUTH_CLIENT_ID = "containerd-client"
DEFAULT_TOKEN_LIFETIME = 60.0
_EXPIRY_MARGIN = 5.0
"""Renew a token this long before it expires, at most (never more than a tenth of its life)."""

# ---------------------------------------------------------------------------------------
# challenges


@dataclass(frozen=True)
class Challenge:
    """One ``WWW-Authenticate`` challenge; ``scheme`` is lower case, parameter names too."""

    scheme: str
    params: Mapping[str, str] = field(default_factory=dict)


_SCHEME_ORDER = {"bearer": 0, "digest": 1, "basic": 2}
_SEPARATORS = set(' \t"(),/:;<=>?@[]\\{}')


def _is_token_char(c: str) -> bool:
    o = ord(c)
    return o < 128 and o > 31 and o != 127 and c not in _SEPARATORS


def _expect_token(s: str) -> tuple[str, str]:
    i = 0
    while i < len(s) and _is_token_char(s[i]):
        i += 1
    return s[:i], s[i:]


def _expect_token_or_quoted(s: str) -> tuple[str, str]:
    if not s.startswith('"'):
        return _expect_token(s)
    out: list[str] = []
    i, escape = 1, False
    while i < len(s):
        c = s[i]
        if escape:
            out.append(c)
            escape = False
        elif c == "\\":
            escape = True
        elif c == '"':
            return "".join(out), s[i + 1 :]
        else:
            out.append(c)
        i += 1
    return "", ""  # unterminated


def _parse_one(header: str) -> tuple[str, dict[str, str]]:
    params: dict[str, str] = {}
    value, s = _expect_token(header)
    if not value:
        return "", params
    while True:
        key, s = _expect_token(s.lstrip(" \t\r\n"))
        if not key or not s.startswith("="):
            break
        val, s = _expect_token_or_quoted(s[1:])
        params[key.lower()] = val
        s = s.lstrip(" \t\r\n")
        if not s.startswith(","):
            break
        s = s[1:]
    return value.lower(), params


def parse_challenges(values: Iterable[str]) -> list[Challenge]:
    """Parse ``WWW-Authenticate`` header values; known schemes only, Bearer first."""
    out = []
    for v in values:
        scheme, params = _parse_one(v)
        if scheme in _SCHEME_ORDER:
            out.append(Challenge(scheme, params))
    out.sort(key=lambda c: _SCHEME_ORDER[c.scheme])
    return out


# ---------------------------------------------------------------------------------------
# credentials


def _docker_config_path() -> Path:
    base = os.environ.get("DOCKER_CONFIG")
    if base:
        return Path(base) / "config.json"
    return Path.home() / ".docker" / "config.json"


_DOCKER_HUB_ALIASES = ("index.docker.io", "docker.io", "registry-1.docker.io", "registry.hub.docker.com")


def _config_key_host(key: str) -> str:
    """``https://index.docker.io/v1/`` → ``index.docker.io``; ``http://h:5000`` → ``h:5000``."""
    if "://" in key:
        key = key.split("://", 1)[1]
    return key.split("/", 1)[0].lower()


def _canonical_host(host: str) -> str:
    host = host.lower()
    return "index.docker.io" if host in _DOCKER_HUB_ALIASES else host


def _decode_auth_entry(entry: Mapping) -> tuple[str, str] | None:
    identity = entry.get("identitytoken") or entry.get("identityToken")
    if identity:
        return "", str(identity)
    auth = entry.get("auth")
    if auth:
        try:
            decoded = base64.b64decode(auth, validate=False).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise InvalidArgument("docker config: an auths entry has an undecodable auth field") from exc
        user, sep, secret = decoded.partition(":")
        if not sep:
            raise InvalidArgument("docker config: an auths entry's auth field is not user:password")
        return user, secret
    if entry.get("username") or entry.get("password"):
        return str(entry.get("username", "")), str(entry.get("password", ""))
    return None


class DockerConfigCredentials:
    """Credentials from a docker ``config.json`` (read once, at construction).

    A missing file means no credentials; an unreadable or malformed one raises
    InvalidArgument (naming the file, never its contents).
    """

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = Path(path) if path is not None else _docker_config_path()
        self._auths: dict[str, tuple[str, str]] = {}
        try:
            raw = self.path.read_text()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise InvalidArgument(f"docker config {quote(self.path)}: {exc.strerror}") from exc
        try:
            doc = json.loads(raw)
        except ValueError as exc:
            raise InvalidArgument(f"docker config {quote(self.path)}: not valid JSON") from exc
        auths = doc.get("auths") if isinstance(doc, dict) else None
        if doc.get("credsStore") or doc.get("credHelpers"):
            log.debug("docker config names credential helpers; they are not run", path=str(self.path))
        for key, entry in (auths or {}).items():
            if not isinstance(entry, Mapping):
                continue
            creds = _decode_auth_entry(entry)
            if creds is not None:
                self._auths.setdefault(_canonical_host(_config_key_host(key)), creds)

    def __call__(self, host: str) -> tuple[str, str] | None:
        host = host.lower()
        found = self._auths.get(_canonical_host(host))
        if found is None and ":" in host:
            found = self._auths.get(_canonical_host(host.rsplit(":", 1)[0]))
        return found

    def hosts(self) -> list[str]:
        return sorted(self._auths)


def make_credentials(
    explicit: Mapping[str, tuple[str, str]] | tuple[str, str] | CredentialsFunc | None = None,
    *,
    docker_config: bool | str | os.PathLike = True,
) -> CredentialsFunc:
    """A credentials function: ``explicit`` first (a host → (user, secret) mapping, one pair
    for every host, or a function), then the docker config (``True``: the default path; a
    path; ``False``: none)."""
    sources: list[CredentialsFunc] = []
    if callable(explicit):
        sources.append(explicit)
    elif isinstance(explicit, tuple):
        pair = explicit
        sources.append(lambda host: pair)
    elif explicit:
        table = {_canonical_host(h): c for h, c in explicit.items()}
        sources.append(lambda host: table.get(_canonical_host(host)))
    if docker_config is not False:
        sources.append(DockerConfigCredentials(None if docker_config is True else docker_config))

    def lookup(host: str) -> tuple[str, str] | None:
        for source in sources:
            found = source(host)
            if found is not None:
                return found
        return None

    return lookup


# ---------------------------------------------------------------------------------------
# tokens


@dataclass(frozen=True)
class TokenOptions:
    realm: str
    service: str = ""
    scopes: tuple[str, ...] = ()
    username: str = ""
    secret: str = field(default="", repr=False)


@dataclass(frozen=True)
class Token:
    token: str = field(repr=False)
    expires_at: float
    refresh_token: str = field(default="", repr=False)
    renew_at: float = 0.0  # when the cache stops handing it out (a little before expires_at)


class NotATokenResponse(UnexpectedStatus):
    """The token endpoint answered 2xx with a body that holds no token."""


def _make_token(doc: Mapping, issued: float) -> Token:
    token = doc.get("access_token") or doc.get("token")
    if not token or not isinstance(token, str):
        raise NotATokenResponse("authorization server did not include a token in the response")
    life = _token_lifetime(doc)
    return Token(token, issued + life, str(doc.get("refresh_token") or ""),
                 renew_at=issued + life - min(_EXPIRY_MARGIN, life / 10))


def _token_lifetime(doc: Mapping) -> float:
    try:
        v = float(doc.get("expires_in") or 0)
    except (TypeError, ValueError):
        v = 0
    return v if v > 0 else DEFAULT_TOKEN_LIFETIME


async def _token_request(client: httpx.AsyncClient, request: httpx.Request, what: str) -> Mapping:
    try:
        resp = await client.send(request)
    except httpx.TransportError as exc:
        raise Unavailable(f"failed to fetch {what} from {request.url.host}: {type(exc).__name__}") from exc
    if resp.status_code < 200 or resp.status_code >= 400:
        cls = Unauthorized if resp.status_code in (401, 403) else UnexpectedStatus
        raise cls(
            f"failed to fetch {what}: unexpected status from {request.method} request to "
            f"{request.url.copy_with(query=None)}: {resp.status_code} {resp.reason_phrase}",
            status_code=resp.status_code,
            method=request.method,
            url=str(request.url.copy_with(query=None)),
            body=resp.content,
        )
    try:
        doc = resp.json()
    except ValueError as exc:
        raise NotATokenResponse(f"failed to fetch {what}: unable to decode token response "
                                f"({resp.headers.get('content-type') or 'no content type'})",
                                status_code=resp.status_code, method=request.method) from exc
    if not isinstance(doc, Mapping):
        raise NotATokenResponse(f"failed to fetch {what}: unable to decode token response",
                                status_code=resp.status_code, method=request.method)
    return doc


async def fetch_token_oauth(client: httpx.AsyncClient, headers: Mapping[str, str], to: TokenOptions) -> Token:
    """POST the OAuth2 form to the realm (needs a secret)."""
    form = {}
    if to.scopes:
        form["scope"] = " ".join(to.scopes)
    form["service"] = to.service
    form["client_id"] = OAUTH_CLIENT_ID
    if to.username == "":
        form.update(grant_type="refresh_token", refresh_token=to.secret)
    else:
        form.update(grant_type="password", username=to.username, password=to.secret)
    req = client.build_request(
        "POST",
        to.realm,
        data=form,
        headers={**headers, "Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    now = time.monotonic()
    return _make_token(await _token_request(client, req, "oauth token"), now)


async def fetch_token_get(client: httpx.AsyncClient, headers: Mapping[str, str], to: TokenOptions) -> Token:
    """GET a token from the realm, anonymously or with basic auth when there is a secret."""
    params: list[tuple[str, str]] = []
    if to.service:
        params.append(("service", to.service))
    params.extend(("scope", s) for s in to.scopes)
    h = dict(headers)
    if to.secret:
        h["Authorization"] = "Basic " + base64.b64encode(f"{to.username}:{to.secret}".encode()).decode()
    req = client.build_request("GET", to.realm, params=params, headers=h)
    now = time.monotonic()
    doc = await _token_request(client, req, "token" if to.secret else "anonymous token")
    try:
        return _make_token(doc, now)
    except NotATokenResponse as exc:
        raise Unauthorized(str(exc)) from None


async def fetch_token(client: httpx.AsyncClient, headers: Mapping[str, str], to: TokenOptions) -> Token:
    """containerd's choice between the OAuth POST and the GET (see module doc)."""
    if to.secret:
        try:
            return await fetch_token_oauth(client, headers, to)
        except NotATokenResponse as exc:
            log.debug("oauth token answer holds no token; trying GET", realm=to.realm, status=exc.status_code)
            return await fetch_token_get(client, headers, to)
        except UnexpectedStatus as exc:
            code = exc.status_code
            if (code == 405 and to.username) or code in (400, 401, 404):
                return await fetch_token_get(client, headers, to)
            raise
    return await fetch_token_get(client, headers, to)


# ---------------------------------------------------------------------------------------
# the authorizer


class _BasicHandler:
    scheme = "basic"

    def __init__(self, username: str, secret: str) -> None:
        self._header = "Basic " + base64.b64encode(f"{username}:{secret}".encode()).decode()

    async def authorization(self, scopes: Sequence[str]) -> str:
        return self._header


class _BearerHandler:
    scheme = "bearer"

    def __init__(self, authorizer: Authorizer, options: TokenOptions) -> None:
        self._authorizer = authorizer
        self.options = options
        self._tokens: dict[str, Token] = {}
        self._inflight: dict[str, asyncio.Future[Token]] = {}

    def _key(self, scopes: Sequence[str]) -> tuple[str, tuple[str, ...]]:
        merged = tuple(sorted(set(scopes) | set(self.options.scopes)))
        return " ".join(merged), merged

    async def authorization(self, scopes: Sequence[str]) -> str:
        key, merged = self._key(scopes)
        cached = self._tokens.get(key)
        if cached is not None and cached.renew_at > time.monotonic():
            return f"Bearer {cached.token}"
        fut = self._inflight.get(key)
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            self._inflight[key] = fut
            try:
                to = TokenOptions(
                    realm=self.options.realm,
                    service=self.options.service,
                    scopes=merged,
                    username=self.options.username,
                    secret=self.options.secret,
                )
                token = await fetch_token(self._authorizer.client, self._authorizer.headers, to)
            except BaseException as exc:
                fut.set_exception(exc)
                fut.exception()  # mark retrieved: waiters, if any, re-raise it themselves
                raise
            else:
                self._tokens[key] = token
                fut.set_result(token)
                log.debug("fetched registry token", scope=key, realm=self.options.realm)
            finally:
                self._inflight.pop(key, None)
            return f"Bearer {token.token}"
        token = await asyncio.shield(fut)
        return f"Bearer {token.token}"

    def forget(self, scopes: Sequence[str]) -> None:
        self._tokens.pop(self._key(scopes)[0], None)

    def cached_scopes(self) -> list[str]:
        return sorted(self._tokens)


def _same_request(a: httpx.Request, b: httpx.Request) -> bool:
    return a.method == b.method and a.url == b.url


class Authorizer:
    """Per-host authentication state for one resolver (see module doc).

    ``authorize`` adds an ``Authorization`` header when a handler exists for the request's
    host; ``add_responses`` learns from a 401 and says whether to retry.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        credentials: CredentialsFunc | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.client = client
        self.credentials = credentials
        self.headers = dict(headers or {})
        self._handlers: dict[str, _BasicHandler | _BearerHandler] = {}

    @staticmethod
    def _host(url: httpx.URL) -> str:
        return url.netloc.decode("ascii")

    async def authorize(self, request: httpx.Request, scopes: Sequence[str] = ()) -> None:
        handler = self._handlers.get(self._host(request.url))
        if handler is None:
            request.headers.pop("Authorization", None)
            return
        request.headers["Authorization"] = await handler.authorization(scopes)

    async def add_responses(self, responses: Sequence[httpx.Response], scopes: Sequence[str] = ()) -> None:
        """Learn from the last (401) response. Returns normally when the request should be
        retried; raises Unauthorized when the credentials or token were refused, and
        NotImplementedYet when no challenge can be answered (then the 401 stands)."""
        last = responses[-1]
        host = self._host(last.request.url)
        for c in parse_challenges(last.headers.get_list("www-authenticate")):
            if c.scheme == "bearer":
                error = c.params.get("error")
                if error and len(responses) > 1 and _same_request(responses[-2].request, last.request):
                    self._handlers.pop(host, None)
                    raise Unauthorized(f"server message: {error}")
                existing = self._handlers.get(host)
                if isinstance(existing, _BearerHandler) and existing.options.realm == c.params.get("realm"):
                    # the cached token for these scopes was refused (expired?): get a new one
                    existing.forget(scopes)
                    return
                username, secret = self._lookup(host)
                realm = c.params.get("realm")
                if not realm:
                    raise Unauthorized("no realm specified for token auth challenge")
                try:
                    url = httpx.URL(realm)
                except Exception as exc:  # httpx.InvalidURL and friends
                    raise Unauthorized("invalid token auth challenge realm") from exc
                if url.scheme not in ("http", "https"):
                    raise Unauthorized("invalid token auth challenge realm")
                scope = c.params.get("scope")
                options = TokenOptions(
                    realm=str(url),
                    service=c.params.get("service", ""),
                    scopes=tuple(scope.split(" ")) if scope else (),
                    username=username,
                    secret=secret,
                )
                self._handlers[host] = _BearerHandler(self, options)
                return
            if c.scheme == "basic" and self.credentials is not None:
                username, secret = self._lookup(host)
                if username and secret:
                    if isinstance(self._handlers.get(host), _BasicHandler) and len(responses) > 1:
                        # these credentials were just refused
                        raise Unauthorized(f"basic auth for {host} refused")
                    self._handlers[host] = _BasicHandler(username, secret)
                    return
        raise NotImplementedYet("failed to find supported auth scheme")

    def _lookup(self, host: str) -> tuple[str, str]:
        if self.credentials is None:
            return "", ""
        found = self.credentials(host)
        return found if found is not None else ("", "")
