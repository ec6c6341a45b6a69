"""Resolving and fetching with httpx.MockTransport: redirects, verification, resume,
platform selection, concurrency and error mapping."""

from __future__ import annotations

import asyncio
import hashlib

import httpx
import pytest

from pycontainerd.descriptor import Descriptor
from pycontainerd.errdefs import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    NotImplementedYet,
    Unavailable,
)
from pycontainerd.remotes import mediatypes as mt
from pycontainerd.remotes import platforms
from pycontainerd.remotes.errors import DigestMismatch, UnexpectedStatus
from pycontainerd.remotes.fetch import fetch_image
from pycontainerd.remotes.resolver import Resolver
from tests.support.fake_registry import CDN, FakeRegistry, platform_of, sha256

REF = "registry.test/library/busybox:latest"


class Sink:
    """A write_blob that keeps every blob and checks nothing runs more than ``limit`` at once."""

    def __init__(self, delay: float = 0.0) -> None:
        self.blobs: dict[str, bytes] = {}
        self.order: list[str] = []
        self.active = 0
        self.max_active = 0
        self.delay = delay

    async def __call__(self, desc: Descriptor, stream) -> None:
        self.order.append(desc.digest)
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            data = b""
            async for chunk in stream:
                data += chunk
                await asyncio.sleep(self.delay)
            self.blobs[desc.digest] = data
        finally:
            self.active -= 1


async def test_resolve_by_tag_and_digest():
    reg = FakeRegistry()
    want = reg.add_image("library/busybox")
    async with Resolver(transport=reg.transport()) as r:
        name, desc = await r.resolve(REF)
        assert (name, desc) == (REF, want)
        head = reg.requests[-1]
        assert head.method == "HEAD"
        accept = head.headers["accept"]
        for t in (mt.DOCKER_SCHEMA2_MANIFEST, mt.DOCKER_SCHEMA2_MANIFEST_LIST, mt.OCI_IMAGE_MANIFEST, mt.OCI_IMAGE_INDEX):
            assert t in accept
        name2, desc2 = await r.resolve(f"registry.test/library/busybox@{want.digest}")
        assert desc2 == want
        assert name2 == f"registry.test/library/busybox@{want.digest}"


async def test_resolve_falls_back_to_get_without_digest_header():
    reg = FakeRegistry()
    want = reg.add_image("library/busybox")
    inner = reg.transport()

    async def handler(request: httpx.Request) -> httpx.Response:
        resp = await inner.handle_async_request(request)
        if request.method == "HEAD":
            del resp.headers["docker-content-digest"]
        return resp

    async with Resolver(transport=httpx.MockTransport(handler)) as r:
        _, desc = await r.resolve(REF)
    assert desc == want
    assert [q.method for q in reg.requests] == ["HEAD", "GET"]


async def test_resolve_head_405_becomes_get():
    reg = FakeRegistry(no_head_manifests=True)
    want = reg.add_image("library/busybox")
    async with Resolver(transport=reg.transport()) as r:
        _, desc = await r.resolve(REF)
    assert desc == want
    assert [q.method for q in reg.requests][:2] == ["HEAD", "GET"]


async def test_resolve_not_found_and_bad_reference():
    reg = FakeRegistry()
    reg.add_image("library/busybox")
    async with Resolver(transport=reg.transport()) as r:
        with pytest.raises(NotFound):
            await r.resolve("registry.test/library/busybox:nope")
        with pytest.raises(NotFound):
            await r.resolve("registry.test/library/busybox@sha256:" + "0" * 64)
        with pytest.raises(InvalidArgument):
            await r.resolve("registry.test/Library/busybox")


async def test_connect_error_is_unavailable():
    def handler(request):
        raise httpx.ConnectError("connection refused", request=request)

    async with Resolver(transport=httpx.MockTransport(handler)) as r:
        with pytest.raises(Unavailable, match="ConnectError"):
            await r.resolve(REF)
        with pytest.raises(Unavailable):
            await r.fetcher(REF).fetch(Descriptor(mt.OCI_LAYER_GZIP, sha256(b"x"), 1))


async def test_plain_http_only_when_allowed():
    reg = FakeRegistry()
    reg.add_image("library/busybox")
    async with Resolver(transport=reg.transport()) as r:
        await r.resolve(REF)
    async with Resolver(transport=reg.transport(), plain_http=["registry.test"]) as r:
        await r.resolve(REF)
    async with Resolver(transport=reg.transport(), plain_http=True) as r:
        await r.resolve(REF)
    assert [q.url.scheme for q in reg.requests] == ["https", "http", "http"]
    assert all(q.headers["user-agent"].startswith("pycontainerd/") for q in reg.requests)


async def test_fetch_blob_verified():
    reg = FakeRegistry()
    data = b"hello layer" * 1000
    desc = reg.add_blob("library/busybox", data)
    async with Resolver(transport=reg.transport()) as r:
        stream = await r.fetcher(REF).fetch(desc)
        assert await stream.read() == data
    q = reg.requests[-1]
    assert q.url.path == f"/v2/library/busybox/blobs/{desc.digest}"
    assert q.headers["accept"] == f"{mt.OCI_LAYER_GZIP}, */*"


async def test_bad_digest_detected_while_streaming():
    reg = FakeRegistry()
    data = b"A" * 200_000
    desc = reg.add_blob("library/busybox", data)
    reg.corrupt[desc.digest] = b"B" * 200_000  # same size, other content
    async with Resolver(transport=reg.transport()) as r:
        stream = await r.fetcher(REF).fetch(desc)
        with pytest.raises(DigestMismatch, match="digest mismatch") as ei:
            async for _ in stream:
                pass
    assert isinstance(ei.value, FailedPrecondition)


async def test_too_long_and_too_short_content_detected():
    reg = FakeRegistry()
    data = b"C" * 1000
    desc = reg.add_blob("library/busybox", data)
    async with Resolver(transport=reg.transport()) as r:
        reg.corrupt[desc.digest] = data + b"extra"
        with pytest.raises(DigestMismatch, match="more than"):
            await (await r.fetcher(REF).fetch(desc)).read()
        reg.corrupt[desc.digest] = data[:-1]
        with pytest.raises(DigestMismatch, match="got 999 bytes"):
            await (await r.fetcher(REF).fetch(desc)).read()


async def test_corrupt_manifest_detected_by_fetch_image():
    reg = FakeRegistry()
    want = reg.add_image("library/busybox")
    reg.corrupt[want.digest] = reg.manifests["library/busybox"][want.digest][1].replace(b"layers", b"Layers")
    async with Resolver(transport=reg.transport()) as r:
        with pytest.raises(DigestMismatch):
            await fetch_image(r, REF, platforms.only("linux/amd64"), Sink())


async def test_range_resume_from_offset():
    reg = FakeRegistry()
    data = bytes(range(256)) * 400
    desc = reg.add_blob("library/busybox", data)
    async with Resolver(transport=reg.transport()) as r:
        f = r.fetcher(REF)
        h = hashlib.sha256(data[:1000])
        rest = await (await f.fetch(desc, 1000, hasher=h)).read()
        assert rest == data[1000:]
        assert reg.requests[-1].headers["range"] == "bytes=1000-"
        # a wrong prefix hash is caught at the end
        with pytest.raises(DigestMismatch):
            await (await f.fetch(desc, 1000, hasher=hashlib.sha256(b"x" * 1000))).read()
        # without a hasher only the size is checked
        assert await (await f.fetch(desc, 5000)).read() == data[5000:]


async def test_range_ignored_by_server_skips_prefix():
    reg = FakeRegistry(honor_range=False)
    data = bytes(range(256)) * 400
    desc = reg.add_blob("library/busybox", data)
    async with Resolver(transport=reg.transport()) as r:
        rest = await (await r.fetcher(REF).fetch(desc, 70_000, hasher=hashlib.sha256(data[:70_000]))).read()
    assert rest == data[70_000:]


async def _fetch_cut_blob(reg: FakeRegistry, cut: str, n: int) -> list[str | None]:
    """Fetch a 256 000-byte blob that ``reg`` cuts (``cut``: ``cut_after`` or ``cut_every``
    at ``n``); check it arrived whole and return the Range headers the GETs carried."""
    data = hashlib.sha256(b"seed").digest() * 8000
    desc = reg.add_blob("library/busybox", data)
    getattr(reg, cut)[desc.digest] = n
    async with Resolver(transport=reg.transport()) as r:
        got = await (await r.fetcher(REF).fetch(desc)).read()
    assert got == data
    return [g.headers.get("range") for g in reg.seen("GET", "/blobs/")]


async def test_dropped_connection_resumes_with_range():
    assert await _fetch_cut_blob(FakeRegistry(), "cut_after", 100_000) == [None, "bytes=100000-"]


@pytest.mark.parametrize("misbehaviour", [{"honor_range": False}, {"bad_content_range": "start0"},
                                          {"bad_content_range": "garbage"}])
async def test_cut_download_resumes_to_the_right_blob_whatever_the_range_answer(misbehaviour):
    """A cut mid-blob, then a registry that ignores Range or answers a Content-Range it was
    not asked for: the blob still arrives whole and verified."""
    ranges = await _fetch_cut_blob(FakeRegistry(**misbehaviour), "cut_after", 100_000)
    assert ranges[:2] == [None, "bytes=100000-"]


async def test_many_cuts_that_make_progress_all_resume():
    """Cut every 30 000 bytes: more cuts than resume_attempts, but each resume progresses."""
    ranges = await _fetch_cut_blob(FakeRegistry(), "cut_every", 30_000)
    assert ranges == [None] + [f"bytes={n}-" for n in range(30_000, 256_000, 30_000)]


async def test_cut_without_progress_gives_up_with_a_clear_error():
    reg = FakeRegistry()
    desc = reg.add_blob("library/busybox", bytes(range(256)) * 400)
    reg.stall_at[desc.digest] = 50_000
    async with Resolver(transport=reg.transport()) as r:
        with pytest.raises(Unavailable) as err:
            await (await r.fetcher(REF).fetch(desc)).read()
    msg = str(err.value)
    assert desc.digest in msg and "offset 50000 of 102400" in msg and "without progress" in msg
    gets = reg.seen("GET", "/blobs/")
    assert len(gets) == 1 + 3  # the first GET, then resume_attempts resumes from 50000
    assert all(g.headers.get("range") == "bytes=50000-" for g in gets[1:])


async def test_redirect_to_other_host_drops_authorization():
    reg = FakeRegistry(auth="basic", redirect_blobs=True)
    want = reg.add_image("library/busybox")
    sink = Sink()
    async with Resolver(transport=reg.transport(), credentials=("user", "secret")) as r:
        result = await fetch_image(r, REF, platforms.only("linux/amd64"), sink)
    assert result.target == want
    cdn = reg.seen(host=CDN)
    assert len(cdn) == 3  # config + 2 layers
    assert all("authorization" not in q.headers for q in cdn)
    registry_gets = reg.seen("GET", "/blobs/", host="registry.test")
    assert registry_gets and all(q.headers["authorization"].startswith("Basic ") for q in registry_gets)
    assert all(hashlib.sha256(b).hexdigest() == d.split(":")[1] for d, b in sink.blobs.items())


async def test_redirect_same_host_keeps_authorization():
    reg = FakeRegistry(auth="basic")
    desc = reg.add_blob("library/busybox", b"data")
    inner = reg.transport()
    seen: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if "/blobs/" in request.url.path and "moved" not in str(request.url) and request.headers.get("authorization"):
            return httpx.Response(307, headers={"Location": f"/v2/library/busybox/blobs/{desc.digest}?moved=1"})
        return await inner.handle_async_request(request)

    async with Resolver(transport=httpx.MockTransport(handler), credentials=("user", "secret")) as r:
        assert await (await r.fetcher(REF).fetch(desc)).read() == b"data"
    assert "moved" in str(seen[-1].url)
    assert seen[-1].headers["authorization"].startswith("Basic ")


async def test_alternative_urls_tried_first_without_credentials():
    reg = FakeRegistry(auth="basic")
    data = b"foreign layer"
    d = reg.add_blob("library/busybox", data)
    desc = Descriptor(mt.DOCKER_SCHEMA2_LAYER_FOREIGN_GZIP, d.digest, d.size, urls=(f"https://{CDN}/blob/{d.digest}",))
    async with Resolver(transport=reg.transport(), credentials=("user", "secret")) as r:
        assert await (await r.fetcher(REF).fetch(desc)).read() == data
    (q,) = reg.requests
    assert q.url.host == CDN and "authorization" not in q.headers


async def test_fetch_missing_blob_is_not_found():
    reg = FakeRegistry()
    async with Resolver(transport=reg.transport()) as r:
        with pytest.raises(NotFound, match="could not fetch content descriptor"):
            await r.fetcher(REF).fetch(Descriptor(mt.OCI_LAYER_GZIP, sha256(b"nope"), 4))


async def test_server_error_is_unexpected_status_with_registry_message():
    def handler(request):
        return httpx.Response(500, json={"errors": [{"code": "UNKNOWN", "message": "storage on fire"}]})

    async with Resolver(transport=httpx.MockTransport(handler)) as r:
        with pytest.raises(UnexpectedStatus, match="storage on fire") as ei:
            await r.fetcher(REF).fetch(Descriptor(mt.OCI_LAYER_GZIP, sha256(b"x"), 1))
    assert ei.value.status_code == 500


async def test_fetch_image_picks_platform_from_index():
    reg = FakeRegistry()
    arm = reg.add_image("library/busybox", None, arch="arm64", variant="v8", seed="arm")
    amd = reg.add_image("library/busybox", None, arch="amd64", seed="amd")
    armv7 = reg.add_image("library/busybox", None, arch="arm", variant="v7", seed="armv7")
    index = reg.add_index(
        "library/busybox",
        [
            Descriptor(arm.media_type, arm.digest, arm.size, platform=platform_of("arm64", "v8")),
            Descriptor(amd.media_type, amd.digest, amd.size, platform=platform_of("amd64")),
            Descriptor(armv7.media_type, armv7.digest, armv7.size, platform=platform_of("arm", "v7")),
        ],
    )
    async with Resolver(transport=reg.transport()) as r:
        sink = Sink()
        res = await fetch_image(r, REF, platforms.only("linux/amd64"), sink)
        assert res.target == index
        assert [d.digest for d in res.written][:2] == [index.digest, amd.digest]
        assert len(res.written) == 5  # index, manifest, config, 2 layers
        assert set(sink.blobs) == {d.digest for d in res.written}

        res = await fetch_image(r, REF, platforms.only("linux/arm64"), Sink())
        assert res.written[1].digest == arm.digest
        assert res.written[1].platform == platform_of("arm64", "v8")

        res = await fetch_image(r, REF, platforms.only("linux/arm/v7"), Sink())
        assert res.written[1].digest == armv7.digest

        with pytest.raises(NotFound, match="no match for platform"):
            await fetch_image(r, REF, platforms.only("linux/s390x"), Sink())

        res = await fetch_image(r, REF, platforms.ALL, Sink())
        assert {d.digest for d in res.written} >= {arm.digest, amd.digest, armv7.digest}
        assert len(res.written) == 1 + 3 * 4


async def test_fetch_image_order_and_concurrency_bound():
    reg = FakeRegistry()
    want = reg.add_image("library/busybox", layers=8)
    async with Resolver(transport=reg.transport()) as r:
        assert r.max_concurrent_downloads == 3
        sink = Sink(delay=0.001)
        res = await fetch_image(r, REF, None, sink)
    manifest = reg.manifests["library/busybox"][want.digest][1]
    import json

    doc = json.loads(manifest)
    expected = [want.digest, doc["config"]["digest"], *(layer["digest"] for layer in doc["layers"])]
    assert [d.digest for d in res.written] == expected
    assert sink.order[:2] == expected[:2]
    assert 1 < sink.max_active <= 3


async def test_fetch_image_docker_schema2():
    reg = FakeRegistry()
    want = reg.add_image("library/busybox", docker=True)
    async with Resolver(transport=reg.transport()) as r:
        res = await fetch_image(r, REF, None, Sink())
    assert res.target == want and res.target.media_type == mt.DOCKER_SCHEMA2_MANIFEST
    assert res.written[1].media_type == mt.DOCKER_SCHEMA2_CONFIG


async def test_fetch_image_writer_already_has_content():
    reg = FakeRegistry()
    reg.add_image("library/busybox")

    async def writer(desc, stream):
        if mt.is_layer(desc.media_type):
            raise AlreadyExists(desc.digest)
        async for _ in stream:
            pass

    async with Resolver(transport=reg.transport()) as r:
        res = await fetch_image(r, REF, None, writer)
    assert len(res.written) == 4


async def test_fetch_image_errors():
    reg = FakeRegistry()
    want = reg.add_image("library/busybox")
    layer = Descriptor.from_dict(__import__("json").loads(reg.manifests["library/busybox"][want.digest][1])["layers"][1])
    del reg.blobs["library/busybox"][layer.digest]
    async with Resolver(transport=reg.transport()) as r:
        with pytest.raises(NotFound):
            await fetch_image(r, REF, None, Sink())

    reg = FakeRegistry()
    # a manifest that claims to be an index
    reg.add_manifest("library/busybox", {"schemaVersion": 2, "config": {}, "layers": []}, mt.OCI_IMAGE_INDEX, "latest")
    async with Resolver(transport=reg.transport()) as r:
        with pytest.raises(InvalidArgument, match="expected index but found manifest"):
            await fetch_image(r, REF, None, Sink())

    reg = FakeRegistry()
    reg.add_manifest("library/busybox", {"schemaVersion": 1, "fsLayers": [{"blobSum": "x"}]}, mt.OCI_IMAGE_MANIFEST, "latest")
    async with Resolver(transport=reg.transport()) as r:
        with pytest.raises(NotImplementedYet, match="schema 1"):
            await fetch_image(r, REF, None, Sink())


async def test_writer_failure_cancels_the_rest():
    reg = FakeRegistry()
    reg.add_image("library/busybox", layers=6)
    calls = []

    async def writer(desc, stream):
        calls.append(desc.digest)
        if mt.is_layer(desc.media_type):
            await asyncio.sleep(0.01)
            raise OSError("disk full")
        async for _ in stream:
            pass

    async with Resolver(transport=reg.transport()) as r:
        with pytest.raises(OSError, match="disk full"):
            await fetch_image(r, REF, None, writer)
    assert len(calls) < 1 + 1 + 6
