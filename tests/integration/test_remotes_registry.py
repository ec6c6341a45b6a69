"""The distribution client against a real registry (Debian's docker-registry) and images
built by umoci/skopeo (tests/support/registry.py)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile

import pytest

from pycontainerd.descriptor import Descriptor
from pycontainerd.errdefs import NotFound
from pycontainerd.remotes import mediatypes as mt
from pycontainerd.remotes import platforms
from pycontainerd.remotes.errors import Unauthorized
from pycontainerd.remotes.fetch import fetch_image
from pycontainerd.remotes.push import push_image
from pycontainerd.remotes.pusher import distribution_source_label
from pycontainerd.remotes.resolver import Resolver

pytestmark = pytest.mark.integration


class Store:
    """A dict content store: write_blob for fetch_image, read_blob for push_image."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    async def write(self, desc: Descriptor, stream) -> None:
        self.blobs[desc.digest] = b"".join([chunk async for chunk in stream])

    def read(self, desc: Descriptor) -> bytes:
        return self.blobs[desc.digest]


def native(busybox_image) -> platforms.MatchComparer:
    return platforms.only(busybox_image.platform)


async def test_resolve_by_tag_and_by_digest(busybox_image):
    img = busybox_image.oci
    async with Resolver(plain_http=[busybox_image.registry.host]) as r:
        name, desc = await r.resolve(img.ref)
        assert name == img.ref
        assert (desc.digest, desc.media_type, desc.size) == (img.digest, img.media_type, img.size)
        name, desc = await r.resolve(img.ref_by_digest)
        assert desc.digest == img.digest and desc.media_type == mt.OCI_IMAGE_MANIFEST
        with pytest.raises(NotFound):
            await r.resolve(f"{busybox_image.registry.host}/library/busybox:no-such-tag")
        with pytest.raises(NotFound):
            await r.resolve(f"{busybox_image.registry.host}/library/no-such-repo:latest")


async def test_https_is_the_default(busybox_image):
    from pycontainerd.errdefs import Unavailable

    async with Resolver() as r:  # the test registry speaks plain HTTP only
        with pytest.raises(Unavailable):
            await r.resolve(busybox_image.ref)


async def test_fetch_full_image_verified(busybox_image):
    img = busybox_image.oci
    store = Store()
    async with Resolver(plain_http=True) as r:
        res = await fetch_image(r, img.ref, native(busybox_image), store.write)
    assert res.target.digest == img.digest
    assert [d.digest for d in res.written] == [img.digest, img.config_digest, *img.layer_digests]
    for d, data in store.blobs.items():
        assert "sha256:" + hashlib.sha256(data).hexdigest() == d
    config = json.loads(store.blobs[img.config_digest])
    assert config["os"] == "linux" and config["architecture"] == busybox_image.architecture
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(store.blobs[img.layer_digests[0]]))) as tf:
        names = {m.name.lstrip("./") for m in tf.getmembers()}
    assert "bin/busybox" in names


async def test_pick_platform_from_multi_platform_index(busybox_image):
    multi = busybox_image.multi
    async with Resolver(plain_http=True) as r:
        res = await fetch_image(r, multi.ref, native(busybox_image), Store().write)
        assert res.target.media_type == mt.OCI_IMAGE_INDEX and res.target.digest == multi.digest
        assert res.written[1].digest == multi.manifest_digest != busybox_image.other_manifest_digest
        assert res.written[1].platform is not None
        assert res.written[1].platform.architecture == busybox_image.architecture

        other = await fetch_image(r, multi.ref, platforms.only(busybox_image.other_platform), Store().write)
        assert other.written[1].digest == busybox_image.other_manifest_digest

        every = await fetch_image(r, multi.ref, platforms.ALL, Store().write)
        manifests = [d.digest for d in every.written if mt.is_manifest(d.media_type)]
        assert sorted(manifests) == sorted([multi.manifest_digest, busybox_image.other_manifest_digest])

        with pytest.raises(NotFound, match="no match for platform"):
            await fetch_image(r, multi.ref, platforms.only("linux/s390x"), Store().write)


async def test_fetch_docker_schema2(busybox_image):
    v2 = busybox_image.v2s2
    store = Store()
    async with Resolver(plain_http=True) as r:
        name, desc = await r.resolve(v2.ref)
        assert desc.media_type == mt.DOCKER_SCHEMA2_MANIFEST and desc.digest == v2.digest
        res = await fetch_image(r, v2.ref, native(busybox_image), store.write)
    assert [d.media_type for d in res.written] == [
        mt.DOCKER_SCHEMA2_MANIFEST,
        mt.DOCKER_SCHEMA2_CONFIG,
        mt.DOCKER_SCHEMA2_LAYER_GZIP,
    ]


async def test_fetch_zstd_layer(busybox_image):
    z = busybox_image.zstd
    if z is None:
        pytest.skip("; ".join(busybox_image.notes))
    store = Store()
    async with Resolver(plain_http=True) as r:
        res = await fetch_image(r, z.ref, native(busybox_image), store.write)
    layer = res.written[-1]
    assert layer.media_type == mt.OCI_LAYER_ZSTD and mt.diff_compression(layer.media_type) == "zstd"
    assert store.blobs[layer.digest][:4] == b"\x28\xb5\x2f\xfd"  # zstd frame magic


async def test_resume_blob_download_with_range(busybox_image):
    img = busybox_image.oci
    async with Resolver(plain_http=True) as r:
        _, manifest_desc = await r.resolve(img.ref)
        f = r.fetcher(img.ref)
        manifest = json.loads(await f.fetch_bytes(manifest_desc))
        layer = Descriptor.from_dict(manifest["layers"][0])
        whole = await (await f.fetch(layer)).read()
        h = hashlib.sha256(whole[:300_000])
        rest = await (await f.fetch(layer, 300_000, hasher=h)).read()
    assert whole[:300_000] + rest == whole


async def test_push_back_under_new_name_mounts_and_skips(busybox_image):
    img = busybox_image.oci
    host = busybox_image.registry.host
    store = Store()
    async with Resolver(plain_http=True) as r:
        res = await fetch_image(r, img.ref, native(busybox_image), store.write)
        # blobs pulled from library/busybox carry its distribution source: they get mounted
        key, value = distribution_source_label(r.parse(img.ref))
        target = res.target
        dest = f"{host}/pcd/copy:v1"
        manifest = json.loads(store.blobs[target.digest])
        children = [Descriptor.from_dict(manifest["config"]), *map(Descriptor.from_dict, manifest["layers"])]
        pusher = r.pusher(dest)
        for c in children:
            c = Descriptor(c.media_type, c.digest, c.size, annotations={key: value})
            assert await pusher.push(c, store.blobs[c.digest]) == "mounted"
        assert await pusher.push(target, store.blobs[target.digest], tag="v1") == "uploaded"

        _, desc = await r.resolve(dest)
        assert desc.digest == target.digest
        again = await push_image(r, dest, target, lambda d: store.blobs[d.digest])
        assert {x for _, x in again.results} == {"exists"}

        # a second name through push_image, plain uploads this time (no source labels)
        res2 = await push_image(r, f"{host}/pcd/uploaded:v2", target, lambda d: store.blobs[d.digest], chunk_size=256 * 1024)
        results = dict((d.digest, x) for d, x in res2.results)
        assert results[target.digest] == "uploaded"
        assert set(results.values()) == {"uploaded"}
        check = Store()
        fetched = await fetch_image(r, f"{host}/pcd/uploaded:v2", native(busybox_image), check.write)
        assert fetched.target.digest == target.digest
        assert check.blobs == {d: store.blobs[d] for d in check.blobs}


async def test_basic_auth_registry(busybox_image, registry_auth):
    img = busybox_image.oci
    store = Store()
    async with Resolver(plain_http=True) as r:
        res = await fetch_image(r, img.ref, native(busybox_image), store.write)

    dest = f"{registry_auth.host}/secure/busybox:latest"
    good = {registry_auth.host: (registry_auth.username, registry_auth.password)}
    async with Resolver(plain_http=True, credentials=good) as r:
        await push_image(r, dest, res.target, lambda d: store.blobs[d.digest])
        name, desc = await r.resolve(dest)
        assert desc.digest == img.digest
        fetched = await fetch_image(r, dest, native(busybox_image), Store().write)
        assert len(fetched.written) == 3

    async with Resolver(plain_http=True, credentials={registry_auth.host: (registry_auth.username, "wrong")}) as r:
        with pytest.raises(Unauthorized, match="authorization failed") as ei:
            await r.resolve(dest)
        assert "wrong" not in str(ei.value)
        assert ei.value.code == "UNKNOWN"

    async with Resolver(plain_http=True) as r:
        with pytest.raises(Unauthorized, match="pull access denied"):
            await r.resolve(dest)
