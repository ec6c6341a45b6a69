"""Registry hosts and credentials for CRI pulls.

Hosts come from ``registry.config_path``, a directory laid out like containerd's
``certs.d``: for a registry host ``h`` (``127.0.0.1:5000``) the first of
``<config_path>/h_port_`` style (``127.0.0.1_5000_``), ``<config_path>/<h>``,
``<config_path>/_default`` that exists holds ``hosts.toml``::

    server = "http://127.0.0.1:5000"           # the upstream, tried last
    [host."http://mirror.local:5000"]          # mirrors, tried first, in file order
      capabilities = ["pull", "resolve"]
      skip_verify = true
      ca = "/etc/certs/mirror.pem"             # or a list of files
      [host."http://mirror.local:5000".header]
        X-Foo = "bar"

Without a hosts directory for the host: ``docker.io`` goes to ``registry-1.docker.io``
over HTTPS; a loopback host (``localhost``, ``127.0.0.1``, ``::1``) is reached over plain
HTTP; anything else over HTTPS (containerd's ``ConfigureHosts``).

Credentials come from the CRI ``AuthConfig`` of the request (``ParseAuth``): username and
password, or an identity token, or ``auth`` (base64 ``user:password``); ignored when
``server_address`` names another host.
"""

from __future__ import annotations

import base64
import binascii
import functools
import ipaddress
import os
import ssl
import tomllib
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ..errdefs import InvalidArgument, quote
from ..remotes import reference as refmod
from ..remotes.session import Capability, RegistryHost

_CAPS = {"pull": Capability.PULL, "resolve": Capability.RESOLVE, "push": Capability.PUSH}


def is_localhost(host: str) -> bool:
    """``localhost`` or a loopback address, with or without a port."""
    h = host
    if h.startswith("["):
        h = h[1:].split("]", 1)[0]
    elif h.count(":") == 1:
        h = h.split(":", 1)[0]
    if h == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def host_directory(host: str) -> str:
    """``host:port`` → ``host_port_`` (containerd's ``hostDirectory``)."""
    idx = host.rfind(":")
    return f"{host[:idx]}_{host[idx + 1:]}_" if idx > 0 else host


def host_dir(config_path: str, host: str) -> str | None:
    """The directory configuring ``host`` under ``config_path``, or None."""
    if not config_path:
        return None
    candidates = []
    if host_directory(host) != host:
        candidates.append(os.path.join(config_path, host_directory(host)))
    candidates += [os.path.join(config_path, host), os.path.join(config_path, "_default")]
    for c in candidates:
        if os.path.isdir(c):
            return c
    return None


@dataclass(frozen=True)
class HostConfig:
    """One configured endpoint of a registry."""

    host: RegistryHost
    skip_verify: bool | None = None
    ca: tuple[str, ...] = ()
    client: tuple[tuple[str, str], ...] = ()


def _files(value, base: str, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        raise InvalidArgument(f"hosts.toml: {what} must be a path or a list of paths")
    return tuple(v if os.path.isabs(v) else os.path.join(base, v) for v in items)


def _endpoint(server: str, table: dict, base: str) -> HostConfig:
    if not server.startswith("http"):
        server = "https://" + server
    u = urlsplit(server)
    if not u.netloc:
        raise InvalidArgument(f"hosts.toml: cannot parse server {quote(server)}")
    path = u.path.rstrip("/")
    if not table.get("override_path"):
        path = (path if path.endswith("/v2") else path + "/v2") if path else "/v2"
    caps = Capability(0)
    for c in table.get("capabilities") or []:
        cap = _CAPS.get(str(c).lower())
        if cap is None:
            raise InvalidArgument(f"hosts.toml: unknown capability {quote(c)}")
        caps |= cap
    if not table.get("capabilities"):
        caps = Capability.ALL
    headers = {}
    for k, v in (table.get("header") or {}).items():
        headers[k] = ", ".join(v) if isinstance(v, list) else str(v)
    client = []
    raw_client = table.get("client")
    if isinstance(raw_client, str):
        client.append((raw_client, raw_client))
    elif isinstance(raw_client, list):
        for item in raw_client:
            if isinstance(item, str):
                client.append((item, item))
            elif isinstance(item, list) and len(item) == 2:
                client.append((str(item[0]), str(item[1])))
    skip = table.get("skip_verify")
    return HostConfig(RegistryHost(host=u.netloc, scheme=u.scheme, path=path, capabilities=caps, headers=headers),
                      skip_verify=bool(skip) if skip is not None else None, ca=_files(table.get("ca"), base, "ca"),
                      client=tuple(client))


def parse_hosts_toml(text: str, base: str, default_host: str) -> list[HostConfig]:
    """The endpoints a ``hosts.toml`` lists: every ``[host."…"]`` in file order, then
    ``server`` (default: ``default_host`` over HTTPS). Raises :class:`InvalidArgument`."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidArgument(f"hosts.toml in {base}: {exc}") from exc
    out = [_endpoint(url, table or {}, base) for url, table in (doc.get("host") or {}).items()]
    server = doc.get("server") or ""
    root = {k: v for k, v in doc.items() if k not in ("host", "server")}
    if server:
        out.append(_endpoint(server, root, base))
    else:
        out.append(_endpoint(f"https://{default_host}", root, base))
    return out


def default_endpoint(domain: str) -> HostConfig:
    if domain == "docker.io":
        return HostConfig(RegistryHost(host="registry-1.docker.io", scheme="https"))
    if is_localhost(domain):
        return HostConfig(RegistryHost(host=domain, scheme="http"), skip_verify=True)
    return HostConfig(RegistryHost(host=refmod.registry_host(domain), scheme="https"))


def endpoints(config_path: str, domain: str) -> list[HostConfig]:
    """Where to pull ``domain``'s images from, in order (see module doc)."""
    d = host_dir(config_path, domain)
    if d is not None:
        path = os.path.join(d, "hosts.toml")
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                return parse_hosts_toml(f.read(), d, domain)
        # certificate files only (docker's layout): https to the host with them
        certs = tuple(sorted(os.path.join(d, n) for n in os.listdir(d) if n.endswith(".crt")))
        base = default_endpoint(domain)
        return [HostConfig(base.host, base.skip_verify, certs)]
    return [default_endpoint(domain)]


@dataclass
class PullSettings:
    """What one pull needs: the hosts function and TLS settings for its HTTP client."""

    hosts: list[HostConfig] = field(default_factory=list)

    def hosts_func(self):
        hosts = [h.host for h in self.hosts]
        return lambda domain: hosts

    def verify(self) -> bool | ssl.SSLContext:
        """httpx ``verify``: False if any endpoint skips verification; a context with the
        configured CAs (and client certificates) otherwise."""
        if any(h.skip_verify for h in self.hosts if h.host.scheme == "https"):
            return False
        cas = [c for h in self.hosts for c in h.ca]
        clients = [c for h in self.hosts for c in h.client]
        if not cas and not clients:
            return default_tls()
        ctx = ssl.create_default_context()
        for ca in cas:
            try:
                ctx.load_verify_locations(ca)
            except (OSError, ssl.SSLError) as exc:
                raise InvalidArgument(f"unable to load CA cert {quote(ca)}: {exc}") from exc
        for cert, key in clients:
            ctx.load_cert_chain(cert, key)
        return ctx


@functools.cache
def default_tls() -> ssl.SSLContext:
    """httpx's own verifying context (``verify=True``: certifi's CAs, or ``SSL_CERT_FILE``
    / ``SSL_CERT_DIR``), made once per process: building it reads the whole CA bundle,
    about 40 ms of CPU that every pull paid for (a new client each pull)."""
    import httpx

    return httpx.create_ssl_context(verify=True)


def pull_settings(config_path: str, ref: str) -> PullSettings:
    domain = refmod.parse_normalized(ref).domain
    return PullSettings(endpoints(config_path, domain))


def parse_auth(auth, host: str) -> tuple[str, str] | None:
    """``(user, secret)`` from a CRI ``AuthConfig`` for ``host``, or None for anonymous."""
    if auth is None:
        return None
    if auth.server_address:
        server = auth.server_address if "://" in auth.server_address else "https://" + auth.server_address
        if urlsplit(server).netloc != host:
            return None
    if auth.username:
        return auth.username, auth.password
    if auth.identity_token:
        return "", auth.identity_token
    if auth.auth:
        try:
            decoded = base64.b64decode(auth.auth, validate=False).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise InvalidArgument(f"invalid auth config: {exc}") from exc
        user, sep, password = decoded.partition(":")
        if not sep:
            raise InvalidArgument("invalid decoded auth: no colon")
        return user, password.strip("\x00")
    return None
