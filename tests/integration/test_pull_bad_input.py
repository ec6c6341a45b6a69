"""Pulling bad images into a real daemon through our client (issue 3, bad input): each a
clear typed error, and nothing half-written stays once the pull's lease is gone."""

from __future__ import annotations

import json

import httpx
import pytest

from pycontainerd.api.services.snapshots.v1 import snapshots_pb2, snapshots_pb2_grpc
from pycontainerd.client import AsyncClient
from pycontainerd.images.pull import pull
from pycontainerd.errdefs import FailedPrecondition, InvalidArgument, NotFound, NotImplementedYet
from pycontainerd.remotes import mediatypes as mt
from pycontainerd.remotes.errors import Unauthorized
from pycontainerd.remotes.resolver import Resolver
from tests.support.fake_registry import FakeRegistry, _json

pytestmark = [pytest.mark.integration, pytest.mark.root]
REF = "registry.test/library/busybox:latest"


async def pulled_nothing(c: AsyncClient) -> None:
    assert await c.list_images() == []
    await c.create_lease("sync-gc")
    await c.delete_lease("sync-gc", sync=True)  # a synchronous collection
    assert await c.content.list() == []


async def try_pull(daemon, reg: FakeRegistry, exc_type, match: str, **resolver_kw):
    async with AsyncClient(daemon.address) as c:
        async with Resolver(transport=reg.transport(), **resolver_kw) as resolver:
            with pytest.raises(exc_type, match=match):
                await pull(c, REF, resolver=resolver, unpack=False)
        await pulled_nothing(c)


async def test_layer_that_does_not_exist(daemon):
    reg = FakeRegistry()
    reg.add_image("library/busybox")
    manifest = json.loads(next(iter(reg.manifests["library/busybox"].values()))[1])
    missing = manifest["layers"][1]["digest"]
    del reg.blobs["library/busybox"][missing]
    await try_pull(daemon, reg, NotFound, missing.split(":")[1][:12])


async def test_blob_with_wrong_bytes(daemon):
    reg = FakeRegistry()
    reg.add_image("library/busybox")
    manifest = json.loads(next(iter(reg.manifests["library/busybox"].values()))[1])
    layer = manifest["layers"][0]
    reg.corrupt[layer["digest"]] = b"x" * layer["size"]
    await try_pull(daemon, reg, FailedPrecondition, "digest")


async def test_manifest_larger_than_the_limit(daemon):
    reg = FakeRegistry()
    config = reg.add_blob("library/busybox", b"{}", mt.OCI_IMAGE_CONFIG)
    doc = {"schemaVersion": 2, "mediaType": mt.OCI_IMAGE_MANIFEST, "config": config.to_dict(), "layers": [],
           "annotations": {"padding": "x" * (5 << 20)}}
    reg.add_manifest("library/busybox", doc, mt.OCI_IMAGE_MANIFEST, "latest")
    await try_pull(daemon, reg, (NotFound, InvalidArgument), "manifest")


async def test_unknown_media_type_is_refused_at_unpack(daemon):
    reg = FakeRegistry()
    layer = reg.add_blob("library/busybox", b"not a tar", "application/vnd.example.unknown")
    config = reg.add_blob("library/busybox", _json({"architecture": "amd64", "os": "linux",
                                                    "rootfs": {"type": "layers", "diff_ids": [layer.digest]}}),
                          mt.OCI_IMAGE_CONFIG)
    doc = {"schemaVersion": 2, "mediaType": mt.OCI_IMAGE_MANIFEST, "config": config.to_dict(),
           "layers": [layer.to_dict()]}
    reg.add_manifest("library/busybox", doc, mt.OCI_IMAGE_MANIFEST, "latest")
    async with AsyncClient(daemon.address) as c:
        async with Resolver(transport=reg.transport()) as resolver:
            with pytest.raises((InvalidArgument, NotImplementedYet), match="media type"):
                await pull(c, REF, resolver=resolver, unpack=True)
        # the failed extraction removed its active snapshot: nothing is left prepared
        stub = snapshots_pb2_grpc.SnapshotsStub(c.conn.channel)
        infos = [i async for resp in stub.List(snapshots_pb2.ListSnapshotsRequest(snapshotter="overlayfs"),
                                               metadata=c.md()) for i in resp.info]
        assert infos == []


async def test_401_without_a_token_endpoint(daemon):
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, headers={"WWW-Authenticate": 'Bearer service="registry.test"'})

    async with AsyncClient(daemon.address) as c:
        async with Resolver(transport=httpx.MockTransport(handler)) as resolver:
            with pytest.raises(Unauthorized):
                await pull(c, REF, resolver=resolver, unpack=False)
        await pulled_nothing(c)


async def test_registry_dropping_the_connection_mid_blob_is_resumed(daemon):
    reg = FakeRegistry()
    reg.add_image("library/busybox", layers=1)
    manifest = json.loads(next(iter(reg.manifests["library/busybox"].values()))[1])
    layer = manifest["layers"][0]
    reg.cut_after[layer["digest"]] = layer["size"] // 2
    async with AsyncClient(daemon.address) as c:
        async with Resolver(transport=reg.transport()) as resolver:
            image = await pull(c, REF, resolver=resolver, unpack=False)
        assert image.target.digest
        info = await c.content.info(layer["digest"])
        assert info.size == layer["size"]
    ranged = [r for r in reg.requests if "range" in r.headers and layer["digest"] in str(r.url)]
    assert ranged, "the second half was fetched with a Range request"


async def test_an_interrupted_pull_is_finished_by_the_next_one_from_the_ingest_offset(daemon):
    """The registry dies mid-blob and cannot resume: the pull fails, the ingest stays; the
    next pull asks the daemon how far the ingest got and downloads only the rest (Range)."""
    from tests.support.fake_registry import _BrokenStream

    reg = FakeRegistry()
    reg.add_image("library/busybox", layers=1)
    manifest = json.loads(next(iter(reg.manifests["library/busybox"].values()))[1])
    layer = manifest["layers"][0]
    blob = reg.blobs["library/busybox"][layer["digest"]]

    def dying(request: httpx.Request) -> httpx.Response:
        if layer["digest"] in str(request.url):
            if "range" in request.headers:
                return httpx.Response(503)
            return httpx.Response(200, stream=_BrokenStream(blob[: len(blob) // 2]),
                                  headers={"Content-Length": str(len(blob))})
        return reg.handle(request)

    # the client retries under one lease of its own: that lease holds the ingest between the
    # pulls (without it the collector aborts an ingest once no lease holds it, as containerd's)
    async with AsyncClient(daemon.address) as c, c.lease():
        async with Resolver(transport=httpx.MockTransport(dying)) as resolver:
            with pytest.raises(Exception):
                await pull(c, REF, resolver=resolver, unpack=False)
        held = [s for s in await c.content.statuses() if layer["digest"] in s.ref and s.offset > 0]
        assert held and held[0].offset <= len(blob) // 2
        reg.requests.clear()
        async with Resolver(transport=reg.transport()) as resolver:
            await pull(c, REF, resolver=resolver, unpack=False)
        assert (await c.content.info(layer["digest"])).size == len(blob)
    ranges = [r.headers["range"] for r in reg.requests if layer["digest"] in str(r.url)]
    assert ranges == [f"bytes={held[0].offset}-"], ranges
