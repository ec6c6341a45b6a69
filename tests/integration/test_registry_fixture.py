"""The registry and image fixtures themselves work (tests/support/registry.py).

These use plain httpx against the real registry, not our client, so a failure here points
at the fixtures, not at pycontainerd.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile

import httpx
import pytest
import zstandard

from tests.support.registry import BUSYBOX_APPLETS, MANIFEST_ACCEPT

pytestmark = pytest.mark.integration


def _layer_members(blob: bytes, media_type: str) -> dict[str, tarfile.TarInfo]:
    if media_type.endswith("+zstd"):
        data = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(blob)).read()
    elif media_type.endswith("gzip"):
        data = gzip.decompress(blob)
    else:
        data = blob
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return {m.name.lstrip("./"): m for m in tf.getmembers()}


def test_registry_answers_v2(registry):
    r = httpx.get(f"{registry.url}/v2/")
    assert r.status_code == 200
    assert r.headers["docker-distribution-api-version"] == "registry/2.0"
    assert registry.host.startswith("127.0.0.1:")


def test_registry_auth_requires_credentials(registry_auth):
    r = httpx.get(f"{registry_auth.url}/v2/")
    assert r.status_code == 401
    assert r.headers["www-authenticate"].lower().startswith("basic")
    assert httpx.get(f"{registry_auth.url}/v2/", auth=registry_auth.auth).status_code == 200
    assert httpx.get(f"{registry_auth.url}/v2/", auth=(registry_auth.username, "wrong")).status_code == 401


def test_busybox_manifest_config_and_layer(busybox_image):
    img = busybox_image.oci
    with busybox_image.registry.client() as c:
        r = c.get(f"/v2/{img.repository}/manifests/{img.tag}", headers={"Accept": MANIFEST_ACCEPT})
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/vnd.oci.image.manifest.v1+json"
        assert r.headers["docker-content-digest"] == img.digest == img.manifest_digest
        manifest = r.json()
        assert manifest["config"]["digest"] == img.config_digest

        config = c.get(f"/v2/{img.repository}/blobs/{img.config_digest}").json()
        assert config["os"] == busybox_image.os == "linux"
        assert config["architecture"] == busybox_image.architecture
        assert config["config"]["Cmd"] == ["sh"]

        (layer,) = manifest["layers"]
        assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
        blob = c.get(f"/v2/{img.repository}/blobs/{layer['digest']}").content
    assert "sha256:" + hashlib.sha256(blob).hexdigest() == layer["digest"]
    members = _layer_members(blob, layer["mediaType"])
    assert members["bin/busybox"].isfile() and members["bin/busybox"].mode & 0o111
    for applet in BUSYBOX_APPLETS:
        assert members[f"bin/{applet}"].issym() and members[f"bin/{applet}"].linkname == "busybox"


def test_busybox_multi_platform_index(busybox_image):
    multi = busybox_image.multi
    assert multi.media_type == "application/vnd.oci.image.index.v1+json"
    with busybox_image.registry.client() as c:
        index = c.get(f"/v2/{multi.repository}/manifests/{multi.digest}", headers={"Accept": MANIFEST_ACCEPT}).json()
    platforms = [m["platform"] for m in index["manifests"]]
    assert len(platforms) == 2
    # the other platform comes first, so a client that takes the first entry picks wrong
    assert index["manifests"][0]["digest"] == busybox_image.other_manifest_digest
    assert index["manifests"][1]["digest"] == multi.manifest_digest == busybox_image.oci.manifest_digest
    assert platforms[1]["architecture"] == busybox_image.architecture
    assert "/".join(filter(None, (platforms[0]["os"], platforms[0]["architecture"], platforms[0].get("variant")))) == (
        busybox_image.other_platform
    )


def test_busybox_v2s2(busybox_image):
    v2 = busybox_image.v2s2
    assert v2.media_type == "application/vnd.docker.distribution.manifest.v2+json"
    assert v2.config_media_type == "application/vnd.docker.container.image.v1+json"
    assert v2.layer_media_types == ("application/vnd.docker.image.rootfs.diff.tar.gzip",)
    # same blobs, different manifest
    assert v2.config_digest == busybox_image.config_digest
    assert v2.layer_digests == busybox_image.oci.layer_digests
    assert v2.digest != busybox_image.digest


def test_busybox_zstd(busybox_image):
    z = busybox_image.zstd
    if z is None:
        pytest.skip("; ".join(busybox_image.notes) or "no zstd variant")
    assert z.layer_media_types == ("application/vnd.oci.image.layer.v1.tar+zstd",)
    with busybox_image.registry.client() as c:
        blob = c.get(f"/v2/{z.repository}/blobs/{z.layer_digests[0]}").content
    assert "bin/busybox" in _layer_members(blob, z.layer_media_types[0])
