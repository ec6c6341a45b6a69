"""An in-memory OCI distribution registry for ``httpx.MockTransport`` unit tests.

It speaks just enough of the distribution spec for the client's corner cases: manifests
by tag and digest, blobs with ``Range``, uploads (POST/PATCH/PUT, cross-repo mount), basic
or bearer auth (with a token server on ``auth.test``), 307 redirects of blob downloads to
``cdn.test``, corrupt content, and a record of every request seen.

Misbehaviours seen in the wild, each a field: a token server whose POST answers an HTML
page (``post_html``), that names the token ``token`` or ``access_token`` only
(``token_key``), short-lived tokens it enforces (``token_expires_in``), challenges without
a scope (``challenge_scope``), slow blobs (``delay``), connections cut once (``cut_after``)
or at the same offset every time (``stall_at``), ``Range`` ignored (``honor_range``) or
answered with a ``Content-Range`` that does not match (``bad_content_range``).

    reg = FakeRegistry(auth="bearer")
    desc = reg.add_image("library/busybox", tag="latest")
    resolver = Resolver(transport=reg.transport(), credentials=("u", "p"))

:func:`serve_http` puts the same registry on a real 127.0.0.1 port (for a daemon to pull
from), and :func:`mirror_image` copies an image built by real tools into it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import contextlib
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import httpx

from pycontainerd.descriptor import Descriptor, Platform
from pycontainerd.remotes import mediatypes as mt

REGISTRY = "registry.test"
AUTH = "auth.test"
CDN = "cdn.test"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _json(doc) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


@dataclass
class FakeRegistry:
    auth: str | None = None  # None, "basic" or "bearer"
    username: str = "user"
    password: str = "secret"
    anonymous_pull: bool = False  # bearer: hand out pull tokens without credentials
    redirect_blobs: bool = False  # blob GETs answer 307 to cdn.test
    honor_range: bool = True
    oauth_post: bool = True  # token server supports the POST form
    token_expires_in: int = 300
    host: str = REGISTRY
    blobs: dict[str, dict[str, bytes]] = field(default_factory=dict)
    manifests: dict[str, dict[str, tuple[str, bytes]]] = field(default_factory=dict)
    tags: dict[str, dict[str, str]] = field(default_factory=dict)
    corrupt: dict[str, bytes] = field(default_factory=dict)  # digest -> bytes served instead
    cut_after: dict[str, int] = field(default_factory=dict)  # digest -> drop connection after n bytes (once)
    requests: list[httpx.Request] = field(default_factory=list)
    tokens: dict[str, set[str]] = field(default_factory=dict)  # token -> granted scopes
    token_requests: list[httpx.Request] = field(default_factory=list)
    uploads: dict[str, bytearray] = field(default_factory=dict)
    no_head_manifests: bool = False  # answer 405 to HEAD on manifests
    post_html: bool = False  # the token POST answers 200 text/html (a login page)
    token_key: str = ""  # "token" / "access_token": the only name the token gets ("": both ways)
    challenge_scope: bool = True  # Bearer challenges name the scope
    realm: str = f"https://{AUTH}/token"
    token_issued: dict[str, float] = field(default_factory=dict)  # token -> monotonic time issued
    delay: dict[str, float] = field(default_factory=dict)  # digest -> seconds before a GET answers
    stall_at: dict[str, int] = field(default_factory=dict)  # digest -> every GET is cut at this offset
    cut_every: dict[str, int] = field(default_factory=dict)  # digest -> every GET is cut after n bytes
    bad_content_range: str = ""  # "start0": 206 from byte 0 whatever was asked; "garbage": unparsable

    # ---- content -------------------------------------------------------------------

    def add_blob(self, repo: str, data: bytes, media_type: str = mt.OCI_LAYER_GZIP, **kw) -> Descriptor:
        d = sha256(data)
        self.blobs.setdefault(repo, {})[d] = data
        return Descriptor(media_type=media_type, digest=d, size=len(data), **kw)

    def add_manifest(self, repo: str, doc: dict, media_type: str, tag: str | None = None, **kw) -> Descriptor:
        data = _json(doc)
        d = sha256(data)
        self.manifests.setdefault(repo, {})[d] = (media_type, data)
        if tag:
            self.tags.setdefault(repo, {})[tag] = d
        return Descriptor(media_type=media_type, digest=d, size=len(data), **kw)

    def add_image(
        self, repo: str, tag: str | None = "latest", *, arch: str = "amd64", variant: str = "", layers: int = 2,
        docker: bool = False, seed: str = "",
    ) -> Descriptor:
        config = _json({"architecture": arch, "os": "linux", "variant": variant or None, "seed": seed})
        cdesc = self.add_blob(repo, config, mt.DOCKER_SCHEMA2_CONFIG if docker else mt.OCI_IMAGE_CONFIG)
        ldescs = [
            self.add_blob(
                repo,
                f"layer {i} {arch} {seed}".encode() * 1000,
                mt.DOCKER_SCHEMA2_LAYER_GZIP if docker else mt.OCI_LAYER_GZIP,
            )
            for i in range(layers)
        ]
        manifest_type = mt.DOCKER_SCHEMA2_MANIFEST if docker else mt.OCI_IMAGE_MANIFEST
        doc = {
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": cdesc.to_dict(),
            "layers": [d.to_dict() for d in ldescs],
        }
        return self.add_manifest(repo, doc, manifest_type, tag)

    def add_index(self, repo: str, entries: list[Descriptor], tag: str | None = "latest") -> Descriptor:
        doc = {"schemaVersion": 2, "mediaType": mt.OCI_IMAGE_INDEX, "manifests": [e.to_dict() for e in entries]}
        return self.add_manifest(repo, doc, mt.OCI_IMAGE_INDEX, tag)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    # ---- the server ----------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        host = request.url.host
        if host == AUTH or request.url.path == "/token":
            return self._token(request)
        if host == CDN:
            m = re.fullmatch(r"/blob/(sha256:[a-f0-9]{64})", request.url.path)
            for repo_blobs in self.blobs.values():
                if m and m.group(1) in repo_blobs:
                    return self._serve(request, m.group(1), repo_blobs[m.group(1)], None)
            return httpx.Response(404)
        path = request.url.path
        if path == "/v2/":
            return self._check_auth(request, None) or httpx.Response(200, json={})
        m = re.fullmatch(r"/v2/(.+)/(manifests|blobs)/(.+)", path)
        if m:
            repo, kind, ref = m.groups()
            if kind == "blobs" and ref.startswith("uploads"):
                return self._upload(request, repo, ref)
            push = request.method in ("PUT", "POST", "PATCH", "DELETE")
            denied = self._check_auth(request, f"repository:{repo}:" + ("pull,push" if push else "pull"))
            if denied:
                return denied
            if kind == "manifests":
                return self._manifest(request, repo, ref)
            return self._blob(request, repo, ref)
        return httpx.Response(404, json={"errors": [{"code": "NOT_FOUND"}]})

    def _challenge(self, scope: str | None, error: str | None = None) -> httpx.Response:
        if self.auth == "basic":
            return httpx.Response(
                401,
                headers={"WWW-Authenticate": 'Basic realm="fake"'},
                json={"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
            )
        params = f'realm="{self.realm}",service="{self.host}"'
        if scope and self.challenge_scope:
            params += f',scope="{scope}"'
        if error:
            params += f',error="{error}"'
        return httpx.Response(
            401,
            headers={"WWW-Authenticate": f"Bearer {params}"},
            json={"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
        )

    def _check_auth(self, request: httpx.Request, scope: str | None) -> httpx.Response | None:
        if self.auth is None:
            return None
        header = request.headers.get("authorization", "")
        if self.auth == "basic":
            want = "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            return None if header == want else self._challenge(scope)
        if not header.startswith("Bearer "):
            return self._challenge(scope)
        granted = self.tokens.get(header[len("Bearer ") :])
        issued = self.token_issued.get(header[len("Bearer ") :], 0.0)
        if granted is None or time.monotonic() - issued > self.token_expires_in:
            return self._challenge(scope, "invalid_token")
        if scope is None:
            return None
        repo, actions = scope.rsplit(":", 1)
        ok = all(any(g.startswith(repo + ":") and a in g.rsplit(":", 1)[1].split(",") for g in granted)
                 for a in actions.split(","))
        return None if ok else self._challenge(scope, "insufficient_scope")

    def _token(self, request: httpx.Request) -> httpx.Response:
        self.token_requests.append(request)
        if request.method == "POST":
            if not self.oauth_post:
                return httpx.Response(404)
            if self.post_html:
                return httpx.Response(200, headers={"Content-Type": "text/html; charset=utf-8"},
                                      content=b"<!DOCTYPE html><html><body><form>Sign in</form></body></html>")
            form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
            authed = form.get("username") == self.username and form.get("password") == self.password
            scopes = form.get("scope", "").split(" ") if form.get("scope") else []
            if not authed:
                return httpx.Response(401, json={"details": "bad credentials"})
            key = "access_token"
        else:
            q = parse_qs(request.url.query.decode())
            scopes = q.get("scope", [])
            header = request.headers.get("authorization", "")
            want = "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            authed = header == want
            if header and not authed:
                return httpx.Response(401, json={"details": "bad credentials"})
            if not authed and not self.anonymous_pull:
                return httpx.Response(401, json={"details": "credentials required"})
            key = "token"
        granted = set()
        for s in scopes:
            if not authed:
                repo, _ = s.rsplit(":", 1)
                s = f"{repo}:pull"
            granted.add(s)
        token = secrets.token_hex(8)
        self.tokens[token] = granted
        self.token_issued[token] = time.monotonic()
        return httpx.Response(200, json={self.token_key or key: token, "expires_in": self.token_expires_in})

    def _manifest(self, request: httpx.Request, repo: str, ref: str) -> httpx.Response:
        store = self.manifests.setdefault(repo, {})
        if request.method == "PUT":
            data = request.content
            d = sha256(data)
            store[d] = (request.headers["content-type"], data)
            if not ref.startswith("sha256:"):
                self.tags.setdefault(repo, {})[ref] = d
            elif ref != d:
                return httpx.Response(400, json={"errors": [{"code": "DIGEST_INVALID"}]})
            return httpx.Response(201, headers={"Docker-Content-Digest": d, "Location": f"/v2/{repo}/manifests/{d}"})
        if request.method == "HEAD" and self.no_head_manifests:
            return httpx.Response(405)
        d = ref if ref.startswith("sha256:") else self.tags.get(repo, {}).get(ref)
        if d is None or d not in store:
            return httpx.Response(404, json={"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]})
        media_type, data = store[d]
        data = self.corrupt.get(d, data)
        if request.method == "GET":
            time.sleep(self.delay.get(d, 0.0))
        headers = {"Content-Type": media_type, "Docker-Content-Digest": d, "Content-Length": str(len(data))}
        return httpx.Response(200, headers=headers, content=b"" if request.method == "HEAD" else data)

    def _blob(self, request: httpx.Request, repo: str, d: str) -> httpx.Response:
        store = self.blobs.get(repo, {})
        if d not in store:
            return httpx.Response(404, json={"errors": [{"code": "BLOB_UNKNOWN", "message": "blob unknown"}]})
        if self.redirect_blobs and request.method == "GET":
            return httpx.Response(307, headers={"Location": f"https://{CDN}/blob/{d}"})
        return self._serve(request, d, store[d], repo)

    def _serve(self, request: httpx.Request, d: str, data: bytes, repo: str | None) -> httpx.Response:
        data = self.corrupt.get(d, data)
        headers = {"Docker-Content-Digest": d, "Content-Type": "application/octet-stream"}
        status = 200
        rng = request.headers.get("range")
        start = 0
        if rng and self.honor_range:
            start = 0 if self.bad_content_range else int(re.fullmatch(r"bytes=(\d+)-", rng).group(1))
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            if self.bad_content_range == "garbage":
                headers["Content-Range"] = f"bytes */{len(data)}"
            data = data[start:]
            status = 206
        if request.method == "HEAD":
            headers["Content-Length"] = str(len(data))
            return httpx.Response(status, headers=headers)
        time.sleep(self.delay.get(d, 0.0))
        cut = self.cut_after.pop(d, None)
        if d in self.stall_at:
            cut = max(0, self.stall_at[d] - start)
        if d in self.cut_every and self.cut_every[d] < len(data):
            cut = self.cut_every[d]
        if cut is not None:
            headers["Content-Length"] = str(len(data))  # promises all of it
            return httpx.Response(status, headers=headers, stream=_BrokenStream(data[:cut]))
        return httpx.Response(status, headers=headers, content=data)

    def _upload(self, request: httpx.Request, repo: str, ref: str) -> httpx.Response:
        denied = self._check_auth(request, f"repository:{repo}:pull,push")
        q = parse_qs(request.url.query.decode())
        if request.method == "POST":
            if "mount" in q:
                src = q["from"][0]
                d = q["mount"][0]
                if self._check_auth(request, f"repository:{src}:pull") is None and d in self.blobs.get(src, {}):
                    if denied:
                        return denied
                    self.blobs.setdefault(repo, {})[d] = self.blobs[src][d]
                    return httpx.Response(201, headers={"Location": f"/v2/{repo}/blobs/{d}", "Docker-Content-Digest": d})
            if denied:
                return denied
            uid = secrets.token_hex(4)
            self.uploads[uid] = bytearray()
            return httpx.Response(202, headers={"Location": f"/v2/{repo}/blobs/uploads/{uid}?_state=x"})
        if denied:
            return denied
        uid = ref.split("/", 1)[1]
        if uid not in self.uploads:
            return httpx.Response(404, json={"errors": [{"code": "BLOB_UPLOAD_UNKNOWN"}]})
        buf = self.uploads[uid]
        if request.method == "PATCH":
            start, _end = map(int, request.headers["content-range"].split("-"))
            if start != len(buf):
                return httpx.Response(416)
            buf += request.content
            return httpx.Response(202, headers={"Location": f"/v2/{repo}/blobs/uploads/{uid}?_state=y",
                                                "Range": f"0-{len(buf) - 1}"})
        if request.method == "PUT":
            buf += request.content
            d = q["digest"][0]
            if sha256(bytes(buf)) != d:
                return httpx.Response(400, json={"errors": [{"code": "DIGEST_INVALID", "message": "digest invalid"}]})
            self.blobs.setdefault(repo, {})[d] = bytes(buf)
            del self.uploads[uid]
            return httpx.Response(201, headers={"Docker-Content-Digest": d, "Location": f"/v2/{repo}/blobs/{d}"})
        return httpx.Response(405)

    # ---- helpers for assertions ----------------------------------------------------

    def seen(self, method: str | None = None, path_part: str = "", host: str | None = None) -> list[httpx.Request]:
        return [
            r for r in self.requests
            if (method is None or r.method == method) and path_part in r.url.path
            and (host is None or r.url.host == host)
        ]


class _BrokenStream(httpx.AsyncByteStream):
    """Yields ``data`` then fails like a dropped connection."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    async def __aiter__(self):
        if self.data:
            yield self.data
        raise httpx.ReadError("connection reset by peer")


def platform_of(arch: str, variant: str = "") -> Platform:
    return Platform(os="linux", architecture=arch, variant=variant)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    registry: FakeRegistry

    def _any(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        host = self.headers.get("Host") or f"{self.server.server_address[0]}:{self.server.server_address[1]}"
        request = httpx.Request(self.command, f"http://{host}{self.path}",
                                headers=[(k, v) for k, v in self.headers.items() if k.lower() != "host"],
                                content=body)
        resp = self.registry.handle(request)
        broken = resp.stream if isinstance(resp.stream, _BrokenStream) else None
        payload = broken.data if broken is not None else (b"" if self.command == "HEAD" else resp.read())
        self.send_response(resp.status_code)
        for k, v in resp.headers.multi_items():
            if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(k, v)
        if self.command == "HEAD" or broken is not None:  # a cut announces all, sends part, hangs up
            self.send_header("Content-Length", resp.headers.get("content-length", "0"))
        else:
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        if broken is not None:
            self.wfile.flush()
            self.close_connection = True

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _any

    def log_message(self, format: str, *args) -> None:  # quiet
        pass


@contextlib.contextmanager
def serve_http(reg: FakeRegistry) -> Iterator[str]:
    """Serve ``reg`` over plain HTTP on a free 127.0.0.1 port; yields ``host:port``. The
    registry's ``host`` and ``realm`` (token endpoint ``/token`` on the same port) are set to
    it. The server thread is stopped and joined on exit."""
    handler = type("Handler", (_Handler,), {"registry": reg})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    host = f"127.0.0.1:{server.server_address[1]}"
    reg.host = host
    reg.realm = f"http://{host}/token"
    thread = threading.Thread(target=server.serve_forever, name=f"fake-registry-{host}", daemon=True)
    thread.start()
    try:
        yield host
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def mirror_image(reg: FakeRegistry, source: str, repo: str, tag: str, *, as_repo: str | None = None) -> Descriptor:
    """Copy ``source``'s ``repo:tag`` (a plain-HTTP registry, e.g. images made by umoci and
    pushed by skopeo) into ``reg`` as ``as_repo:tag``, manifests and blobs byte for byte."""
    dest = as_repo or repo
    accept = ", ".join([mt.OCI_IMAGE_INDEX, mt.OCI_IMAGE_MANIFEST, mt.DOCKER_SCHEMA2_MANIFEST_LIST,
                        mt.DOCKER_SCHEMA2_MANIFEST])
    with httpx.Client(base_url=f"http://{source}/v2/{repo}", timeout=60) as c:
        def copy_manifest(ref: str, tag: str | None) -> Descriptor:
            r = c.get(f"/manifests/{ref}", headers={"Accept": accept})
            r.raise_for_status()
            media_type = r.headers["content-type"].split(";")[0]
            d = sha256(r.content)
            reg.manifests.setdefault(dest, {})[d] = (media_type, r.content)
            if tag:
                reg.tags.setdefault(dest, {})[tag] = d
            doc = json.loads(r.content)
            for child in doc.get("manifests", []):
                copy_manifest(child["digest"], None)
            for blob in [doc["config"], *doc.get("layers", [])] if "config" in doc else []:
                b = c.get(f"/blobs/{blob['digest']}", follow_redirects=True)
                b.raise_for_status()
                reg.blobs.setdefault(dest, {})[blob["digest"]] = b.content
            return Descriptor(media_type=media_type, digest=d, size=len(r.content))

        return copy_manifest(tag, tag)
