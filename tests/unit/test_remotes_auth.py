"""Authentication: challenges, basic and bearer flows, token caching, credentials sources."""

from __future__ import annotations

import asyncio
import base64
import json
import logging

import httpx
import pytest

from pycontainerd.errdefs import InvalidArgument
from pycontainerd.remotes.auth import (
    DockerConfigCredentials,
    make_credentials,
    parse_challenges,
)
from pycontainerd.remotes import platforms
from pycontainerd.remotes.errors import Unauthorized
from pycontainerd.remotes.fetch import fetch_image
from pycontainerd.remotes.resolver import Resolver
from tests.support.fake_registry import AUTH, FakeRegistry

REF = "registry.test/library/busybox:latest"


def test_parse_challenges():
    cs = parse_challenges(
        [
            'Basic realm="Registry Realm"',
            'Bearer realm="https://auth.example/token",service="registry.example",'
            'scope="repository:a/b:pull,push repository:c:pull",error="insufficient_scope"',
            'Negotiate',
            'Digest realm="x", qop="auth", nonce="a\\"b"',
        ]
    )
    assert [c.scheme for c in cs] == ["bearer", "digest", "basic"]
    assert cs[0].params == {
        "realm": "https://auth.example/token",
        "service": "registry.example",
        "scope": "repository:a/b:pull,push repository:c:pull",
        "error": "insufficient_scope",
    }
    assert cs[1].params["nonce"] == 'a"b'
    assert cs[2].params == {"realm": "Registry Realm"}
    assert parse_challenges(["BEARER Realm=x"])[0].params == {"realm": "x"}
    assert parse_challenges([""]) == []


async def test_basic_challenge_then_retry_with_credentials():
    reg = FakeRegistry(auth="basic")
    want = reg.add_image("library/busybox")
    async with Resolver(transport=reg.transport(), credentials={"registry.test": ("user", "secret")}) as r:
        name, desc = await r.resolve(REF)
        assert desc.digest == want.digest
        # the next request goes out authorized straight away
        n = len(reg.requests)
        await r.fetcher(name).fetch_bytes(desc)
        assert len(reg.requests) == n + 1
    first, second = reg.requests[0], reg.requests[1]
    assert "authorization" not in first.headers
    assert second.headers["authorization"] == "Basic " + base64.b64encode(b"user:secret").decode()


async def test_basic_without_credentials_is_unauthorized():
    reg = FakeRegistry(auth="basic")
    reg.add_image("library/busybox")
    async with Resolver(transport=reg.transport()) as r:
        with pytest.raises(Unauthorized, match="pull access denied") as ei:
            await r.resolve(REF)
    assert ei.value.code == "UNKNOWN"
    assert ei.value.status_code == 401


async def test_basic_wrong_password_is_unauthorized_and_bounded():
    reg = FakeRegistry(auth="basic")
    reg.add_image("library/busybox")
    async with Resolver(transport=reg.transport(), credentials=("user", "wrong")) as r:
        with pytest.raises(Unauthorized, match="authorization failed"):
            await r.resolve(REF)
    assert len(reg.requests) <= 3
    assert "wrong" not in str(reg.requests)


async def test_bearer_token_then_retry():
    reg = FakeRegistry(auth="bearer")
    want = reg.add_image("library/busybox")
    async with Resolver(transport=reg.transport(), credentials=("user", "secret")) as r:
        name, desc = await r.resolve(REF)
    assert desc.digest == want.digest
    (tok,) = reg.token_requests
    # with a secret, containerd POSTs the OAuth2 form first
    assert tok.method == "POST"
    form = dict(x.split("=", 1) for x in tok.content.decode().split("&"))
    assert form["grant_type"] == "password" and form["client_id"] == "containerd-client"
    assert form["service"] == "registry.test"
    assert form["scope"] == "repository%3Alibrary%2Fbusybox%3Apull"
    assert reg.requests[-1].headers["authorization"].startswith("Bearer ")


async def test_bearer_oauth_404_falls_back_to_get_with_basic():
    reg = FakeRegistry(auth="bearer", oauth_post=False)
    reg.add_image("library/busybox")
    async with Resolver(transport=reg.transport(), credentials=("user", "secret")) as r:
        await r.resolve(REF)
    post, get = reg.token_requests
    assert post.method == "POST" and get.method == "GET"
    assert get.headers["authorization"] == "Basic " + base64.b64encode(b"user:secret").decode()
    q = httpx.QueryParams(get.url.query)
    assert q["service"] == "registry.test" and q.get_list("scope") == ["repository:library/busybox:pull"]


async def test_bearer_anonymous_get():
    reg = FakeRegistry(auth="bearer", anonymous_pull=True)
    want = reg.add_image("library/busybox")
    async with Resolver(transport=reg.transport()) as r:
        name, desc = await r.resolve(REF)
        await r.fetcher(name).fetch_bytes(desc)
    assert desc == want
    (tok,) = reg.token_requests
    assert tok.method == "GET" and "authorization" not in tok.headers


async def test_bearer_bad_credentials_is_unauthorized():
    reg = FakeRegistry(auth="bearer")
    reg.add_image("library/busybox")
    async with Resolver(transport=reg.transport(), credentials=("user", "nope")) as r:
        with pytest.raises(Unauthorized) as ei:
            await r.resolve(REF)
    assert "pull access denied" in str(ei.value)
    assert "nope" not in str(ei.value)


async def test_token_cached_per_scope():
    reg = FakeRegistry(auth="bearer", anonymous_pull=True)
    reg.add_image("library/busybox")
    reg.add_image("library/other")
    async with Resolver(transport=reg.transport()) as r:
        for _ in range(3):
            name, desc = await r.resolve(REF)
            await r.fetcher(name).fetch_bytes(desc)
        assert len(reg.token_requests) == 1
        await r.resolve("registry.test/library/other:latest")
        assert len(reg.token_requests) == 2  # another repository, another scope
        await r.resolve(REF)
        assert len(reg.token_requests) == 2
    scopes = [httpx.QueryParams(t.url.query).get_list("scope") for t in reg.token_requests]
    # like containerd, the scope of the challenge that set the handler up is always asked too
    assert scopes == [
        ["repository:library/busybox:pull"],
        ["repository:library/busybox:pull", "repository:library/other:pull"],
    ]


async def test_concurrent_requests_share_one_token_request():
    import asyncio

    reg = FakeRegistry(auth="bearer", anonymous_pull=True)
    reg.add_image("library/busybox")
    async with Resolver(transport=reg.transport()) as r:
        await r.resolve(REF)  # sets up the bearer handler
        reg.token_requests.clear()
        r.session.authorizer._handlers["registry.test"]._tokens.clear()
        await asyncio.gather(*(r.resolve(REF) for _ in range(5)))
    assert len(reg.token_requests) == 1


async def test_expired_token_is_refetched():
    reg = FakeRegistry(auth="bearer", anonymous_pull=True, token_expires_in=1)
    reg.add_image("library/busybox")
    async with Resolver(transport=reg.transport()) as r:
        await r.resolve(REF)
        await r.resolve(REF)
        assert len(reg.token_requests) == 1  # a 1-second token is used while it lives
        await asyncio.sleep(1.1)
        await r.resolve(REF)
    assert len(reg.token_requests) == 2


async def test_two_second_tokens_cost_one_refresh_per_pull():
    """A pull that outlives its 2-second token asks for one more, not one per request
    (a renewal margin longer than the token's life made every request fetch one)."""
    reg = FakeRegistry(auth="bearer", token_expires_in=2)
    want = reg.add_image("library/busybox", layers=3)
    manifest = json.loads(reg.manifests["library/busybox"][want.digest][1])
    reg.delay[manifest["config"]["digest"]] = 2.2  # the pull outlives the first token
    async with Resolver(transport=reg.transport(), credentials=("user", "secret")) as r:
        result = await fetch_image(r, REF, platforms.only("linux/amd64"), _discard)
    assert result.target == want
    assert len(reg.token_requests) == 2, [t.method for t in reg.token_requests]


async def _discard(desc, stream) -> None:
    async for _ in stream:
        pass


async def test_oauth_post_answering_html_falls_back_to_get():
    """A token server whose POST is a login page (200 text/html): containerd's resolver
    falls back to the GET form, and so do we."""
    reg = FakeRegistry(auth="bearer", post_html=True)
    want = reg.add_image("library/busybox")
    async with Resolver(transport=reg.transport(), credentials=("user", "secret")) as r:
        name, desc = await r.resolve(REF)
        await r.fetcher(name).fetch_bytes(desc)
    assert desc == want
    post, get = reg.token_requests
    assert post.method == "POST" and get.method == "GET"
    assert get.headers["authorization"] == "Basic " + base64.b64encode(b"user:secret").decode()


@pytest.mark.parametrize("key", ["token", "access_token"])
@pytest.mark.parametrize("post", [True, False])
async def test_token_answer_named_token_or_access_token(key, post):
    reg = FakeRegistry(auth="bearer", token_key=key, oauth_post=post)
    want = reg.add_image("library/busybox")
    async with Resolver(transport=reg.transport(), credentials=("user", "secret")) as r:
        name, desc = await r.resolve(REF)
        await r.fetcher(name).fetch_bytes(desc)
    assert desc == want
    assert [t.method for t in reg.token_requests] == (["POST"] if post else ["POST", "GET"])


async def test_challenge_without_scope_asks_for_the_repository_scope():
    reg = FakeRegistry(auth="bearer", challenge_scope=False)
    want = reg.add_image("library/busybox")
    async with Resolver(transport=reg.transport(), credentials=("user", "secret")) as r:
        name, desc = await r.resolve(REF)
        assert await r.fetcher(name).fetch_bytes(desc)
    assert desc == want
    assert "scope=" not in reg.requests[0].url.query.decode()
    (post,) = reg.token_requests
    form = dict(x.split("=", 1) for x in post.content.decode().split("&"))
    assert form["scope"] == "repository%3Alibrary%2Fbusybox%3Apull"


async def test_revoked_token_is_replaced():
    reg = FakeRegistry(auth="bearer", anonymous_pull=True)
    reg.add_image("library/busybox")
    async with Resolver(transport=reg.transport()) as r:
        await r.resolve(REF)
        reg.tokens.clear()  # the server forgets every token
        await r.resolve(REF)
    assert len(reg.token_requests) == 2


async def test_secrets_never_logged(caplog, capsys):
    import structlog

    saved = structlog.get_config()
    structlog.configure(
        processors=[structlog.processors.KeyValueRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        logger_factory=structlog.PrintLoggerFactory(),
    )
    try:
        reg = FakeRegistry(auth="bearer", password="s3cr3t-pw")
        reg.add_image("library/busybox")
        async with Resolver(transport=reg.transport(), credentials=("user", "s3cr3t-pw")) as r:
            name, desc = await r.resolve(REF)
            await r.fetcher(name).fetch_bytes(desc)
        out = capsys.readouterr()
        tokens = list(reg.tokens)
        text = out.out + out.err + caplog.text
        assert "do request" in text
        assert "s3cr3t-pw" not in text
        assert all(t not in text for t in tokens)
        assert "Bearer" not in text and "Basic " not in text
    finally:
        structlog.configure(**saved)


def test_docker_config_credentials(tmp_path, monkeypatch):
    cfg = {
        "auths": {
            "https://index.docker.io/v1/": {"auth": base64.b64encode(b"hub:hubpw").decode()},
            "127.0.0.1:5000": {"username": "u", "password": "p"},
            "http://reg.example:8443/v2/": {"auth": base64.b64encode(b"x:y:z").decode()},
            "ident.example": {"identitytoken": "refresh-me"},
            "empty.example": {},
        },
        "credsStore": "desktop",
    }
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    c = DockerConfigCredentials()
    assert c("registry-1.docker.io") == ("hub", "hubpw")
    assert c("docker.io") == ("hub", "hubpw")
    assert c("127.0.0.1:5000") == ("u", "p")
    assert c("reg.example:8443") == ("x", "y:z")
    assert c("ident.example") == ("", "refresh-me")
    assert c("empty.example") is None
    assert c("unknown.example") is None
    # explicit credentials override the file
    creds = make_credentials({"127.0.0.1:5000": ("me", "pw")}, docker_config=True)
    assert creds("127.0.0.1:5000") == ("me", "pw")
    assert creds("docker.io") == ("hub", "hubpw")
    assert make_credentials(None, docker_config=False)("docker.io") is None


def test_docker_config_missing_and_malformed(tmp_path):
    assert DockerConfigCredentials(tmp_path / "nope.json")("x") is None
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InvalidArgument, match="not valid JSON"):
        DockerConfigCredentials(bad)
    bad.write_text(json.dumps({"auths": {"h": {"auth": base64.b64encode(b"nocolon").decode()}}}))
    with pytest.raises(InvalidArgument) as ei:
        DockerConfigCredentials(bad)
    assert "nocolon" not in str(ei.value)


async def test_identity_token_uses_refresh_grant():
    reg = FakeRegistry(auth="bearer")
    reg.add_image("library/busybox")
    async with Resolver(transport=reg.transport(), credentials=("", "refresh-token-value")) as r:
        with pytest.raises(Unauthorized):
            await r.resolve(REF)  # the fake has no refresh-token grant; what matters is the form
    post = reg.token_requests[0]
    form = dict(x.split("=", 1) for x in post.content.decode().split("&"))
    assert form["grant_type"] == "refresh_token" and form["refresh_token"] == "refresh-token-value"
    assert post.url.host == AUTH
