"""Pushing with httpx.MockTransport: existence checks, cross-repo mount, monolithic and
chunked uploads, manifests by tag, whole images."""

from __future__ import annotations

import json

import httpx
import pytest

from pycontainerd.descriptor import Descriptor
from pycontainerd.remotes import mediatypes as mt
from pycontainerd.remotes.errors import DigestMismatch, UnexpectedStatus
from pycontainerd.remotes.push import push_image
from pycontainerd.remotes.pusher import (
    append_distribution_source,
    distribution_source_label,
    select_mount_candidate,
)
from pycontainerd.remotes.reference import parse_normalized
from pycontainerd.remotes.resolver import Resolver
from tests.support.fake_registry import FakeRegistry, sha256

DST = "registry.test/team/copy:v1"


def blob(data: bytes, **kw) -> Descriptor:
    return Descriptor(mt.OCI_LAYER_GZIP, sha256(data), len(data), **kw)


async def test_push_blob_monolithic_upload():
    reg = FakeRegistry(auth="bearer")
    data = b"layer bytes" * 100
    async with Resolver(transport=reg.transport(), credentials=("user", "secret")) as r:
        assert await r.pusher(DST).push(blob(data), data) == "uploaded"
    assert reg.blobs["team/copy"][sha256(data)] == data
    methods = [(q.method, q.url.path.split("/blobs/")[-1][:8]) for q in reg.requests if "/blobs/" in q.url.path]
    assert [m for m, _ in methods if m != "HEAD"][-2:] == ["POST", "PUT"]
    put = reg.seen("PUT")[-1]
    assert put.url.params["digest"] == sha256(data)
    assert put.url.params["_state"] == "x"  # the Location's query is kept
    assert put.headers["content-type"] == "application/octet-stream"
    assert put.headers["content-length"] == str(len(data))
    # push scope was asked for
    form = reg.token_requests[-1].content.decode()
    assert "pull%2Cpush" in form


async def test_push_blob_exists_is_skipped():
    reg = FakeRegistry()
    data = b"already there"
    reg.add_blob("team/copy", data)
    async with Resolver(transport=reg.transport()) as r:
        assert await r.pusher(DST).push(blob(data), data) == "exists"
    assert [q.method for q in reg.requests] == ["HEAD"]


async def test_push_blob_chunked_upload():
    reg = FakeRegistry()
    data = bytes(range(256)) * 40  # 10240 bytes

    async def gen():
        for i in range(0, len(data), 1000):
            yield data[i : i + 1000]

    async with Resolver(transport=reg.transport()) as r:
        assert await r.pusher(DST).push(blob(data), gen, chunk_size=4096) == "uploaded"
    patches = reg.seen("PATCH")
    assert [p.headers["content-range"] for p in patches] == ["0-4095", "4096-8191", "8192-10239"]
    assert all(p.url.params["_state"] for p in patches)
    final = reg.seen("PUT")[-1]
    assert final.content == b"" and final.url.params["digest"] == sha256(data)
    assert reg.blobs["team/copy"][sha256(data)] == data


async def test_push_blob_cross_repo_mount():
    reg = FakeRegistry(auth="bearer")
    data = b"shared layer"
    reg.add_blob("library/busybox", data)
    key, value = distribution_source_label(parse_normalized("registry.test/library/busybox:latest"))
    desc = blob(data, annotations={key: value})
    async with Resolver(transport=reg.transport(), credentials=("user", "secret")) as r:
        assert await r.pusher(DST).push(desc, data) == "mounted"
    post = reg.seen("POST", "/blobs/uploads/")[-1]
    assert post.url.params["mount"] == sha256(data) and post.url.params["from"] == "library/busybox"
    assert not reg.seen("PUT")
    # the token asked for pull on the source repository too
    form = reg.token_requests[-1].content.decode()
    assert "repository%3Alibrary%2Fbusybox%3Apull" in form
    assert reg.blobs["team/copy"][sha256(data)] == data


async def test_mount_refused_falls_back_to_upload():
    reg = FakeRegistry()
    data = b"not in source"
    async with Resolver(transport=reg.transport()) as r:
        # the fake answers 202 (starts an upload) when the source does not have the blob
        assert await r.pusher(DST).push(blob(data), data, mount_from="library/elsewhere") == "uploaded"
    assert [q.method for q in reg.requests] == ["HEAD", "POST", "PUT"]


async def test_push_manifest_by_tag_and_digest():
    reg = FakeRegistry()
    config = b'{"architecture":"amd64","os":"linux"}'
    layer = b"layer"
    reg.add_blob("team/copy", config)
    reg.add_blob("team/copy", layer)
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_IMAGE_MANIFEST,
        "config": Descriptor(mt.OCI_IMAGE_CONFIG, sha256(config), len(config)).to_dict(),
        "layers": [blob(layer).to_dict()],
    }
    data = json.dumps(doc).encode()
    desc = Descriptor(mt.OCI_IMAGE_MANIFEST, sha256(data), len(data))
    async with Resolver(transport=reg.transport()) as r:
        p = r.pusher(DST)
        assert await p.push(desc, data, tag="v1") == "uploaded"
        put = reg.seen("PUT")[-1]
        assert put.url.path == "/v2/team/copy/manifests/v1"
        assert put.headers["content-type"] == mt.OCI_IMAGE_MANIFEST
        assert await p.push(desc, data, tag="v1") == "exists"
        assert await p.push(desc, data) == "exists"  # by digest
        name, got = await r.resolve(DST)
        assert got == desc
        # a tag pointing elsewhere does not count as "exists"
        other = json.dumps({**doc, "annotations": {"x": "y"}}).encode()
        odesc = Descriptor(mt.OCI_IMAGE_MANIFEST, sha256(other), len(other))
        assert await p.push(odesc, other, tag="v1") == "uploaded"


async def test_registry_digest_mismatch_is_an_error():
    reg = FakeRegistry()
    data = b"payload"
    wrong = Descriptor(mt.OCI_LAYER_GZIP, sha256(b"other"), len(data))
    async with Resolver(transport=reg.transport()) as r:
        with pytest.raises(UnexpectedStatus, match="DIGEST_INVALID|digest invalid"):
            await r.pusher(DST).push(wrong, data)

    def handler(request):
        if request.method == "HEAD":
            return httpx.Response(404)
        return httpx.Response(201, headers={"Docker-Content-Digest": sha256(b"liar")})

    m = Descriptor(mt.OCI_IMAGE_MANIFEST, sha256(b"{}"), 2)
    async with Resolver(transport=httpx.MockTransport(handler)) as r:
        with pytest.raises(DigestMismatch):
            await r.pusher(DST).push(m, b"{}", tag="v1")


async def test_upload_on_other_host_gets_no_credentials():
    reg = FakeRegistry(auth="basic")
    data = b"elsewhere"
    inner = reg.transport()
    seen: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host == "upload.test":
            return httpx.Response(201, headers={"Docker-Content-Digest": sha256(data)})
        resp = await inner.handle_async_request(request)
        if request.method == "POST" and resp.status_code == 202:
            return httpx.Response(202, headers={"Location": "https://upload.test/session/1?sig=abc"})
        return resp

    async with Resolver(transport=httpx.MockTransport(handler), credentials=("user", "secret")) as r:
        assert await r.pusher(DST).push(blob(data), data) == "uploaded"
    put = seen[-1]
    assert put.url.host == "upload.test" and put.method == "PUT"
    assert "authorization" not in put.headers
    assert put.url.params["sig"] == "abc" and put.url.params["digest"] == sha256(data)


async def test_push_image_children_first():
    src = FakeRegistry()
    target = src.add_image("library/busybox", layers=3)
    store: dict[str, bytes] = {}
    for repo in src.blobs.values():
        store.update(repo)
    for repo in src.manifests.values():
        store.update({d: data for d, (_, data) in repo.items()})

    dst = FakeRegistry()
    order: list[str] = []
    inner = dst.transport()

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "PUT":
            order.append(request.url.path)
        return await inner.handle_async_request(request)

    async def read(desc):
        yield store[desc.digest]

    async with Resolver(transport=httpx.MockTransport(handler)) as r:
        res = await push_image(r, DST, target, read)
        assert {x for _, x in res.results} == {"uploaded"}
        assert len(res.results) == 5
        assert order[-1] == "/v2/team/copy/manifests/v1"
        assert all("/blobs/uploads/" in p for p in order[:-1])
        _, desc = await r.resolve(DST)
        assert desc == target
        # pushing again finds everything there
        again = await push_image(r, DST, target, read)
        assert {x for _, x in again.results} == {"exists"}


def test_mount_candidate_selection():
    ref = parse_normalized("registry.test/team/app/copy:v1")
    key = "containerd.io/distribution.source.registry.test"
    assert select_mount_candidate(ref, {key: "library/busybox,team/app/orig,team/other"}) == "team/app/orig"
    assert select_mount_candidate(ref, {key: "team/app/copy"}) == ""
    assert select_mount_candidate(ref, {"containerd.io/distribution.source.other.test": "x"}) == ""
    assert select_mount_candidate(ref, None) == ""
    assert append_distribution_source("b,a", "c") == "a,b,c"
    assert append_distribution_source("", "a") == "a"
    assert append_distribution_source("a", "a") == "a"
