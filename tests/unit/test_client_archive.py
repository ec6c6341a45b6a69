"""Image archives without a daemon: export writes an OCI layout tar (plus docker's
manifest.json) streamed from a content store; import reads it back, and reads docker
archives (``docker save`` layout), in one pass, labelling manifests for GC."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import tarfile

import pytest

from pycontainerd.client.archive import export_archive, import_archive
from pycontainerd.client.content import ContentInfo
from pycontainerd.descriptor import Descriptor
from pycontainerd.errdefs import AlreadyExists, InvalidArgument, NotFound
from pycontainerd.metadata.images import Image
from pycontainerd.remotes import mediatypes as mt


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class FakeContent:
    """An in-memory content store with the client's API."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.labels: dict[str, dict[str, str]] = {}
        self.writes = 0

    async def info(self, digest: str) -> ContentInfo:
        if digest not in self.blobs:
            raise NotFound(f"content digest {digest}")
        return ContentInfo(digest, len(self.blobs[digest]), labels=dict(self.labels.get(digest, {})))

    async def read(self, digest: str, offset: int = 0, size: int = 0):
        if digest not in self.blobs:
            raise NotFound(f"content digest {digest}")
        data = self.blobs[digest][offset:offset + size if size else None]
        for i in range(0, len(data), 7):  # small chunks on purpose
            yield data[i:i + 7]

    async def read_all(self, digest: str) -> bytes:
        return b"".join([c async for c in self.read(digest)])

    async def write(self, ref, data, *, expected="", total=0, labels=None, progress=None) -> str:
        if isinstance(data, bytes):
            raw = data
        else:
            raw = b"".join([c async for c in data])
        if total and len(raw) != total:
            raise InvalidArgument(f"{ref}: size {len(raw)} != {total}")
        digest = sha(raw)
        if expected and digest != expected:
            raise InvalidArgument(f"{ref}: digest {digest} != {expected}")
        self.blobs[digest] = raw
        self.labels.setdefault(digest, {}).update(labels or {})
        self.writes += 1
        return digest

    async def update_labels(self, digest, labels, paths=None) -> ContentInfo:
        self.labels.setdefault(digest, {}).update(labels)
        return await self.info(digest)


class FakeClient:
    def __init__(self) -> None:
        self.content = FakeContent()
        self.images: dict[str, Image] = {}

    @contextlib.asynccontextmanager
    async def lease(self):
        yield None

    async def create_image(self, image: Image) -> Image:
        if image.name in self.images:
            raise AlreadyExists(f"image {image.name!r}")
        self.images[image.name] = image
        return image

    async def update_image(self, image: Image, *paths: str) -> Image:
        self.images[image.name] = image
        return image


def make_image(client: FakeClient, name: str, layer_data: bytes = b"layer-bytes" * 100) -> Image:
    layer = gzip.compress(layer_data, mtime=0)
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [sha(layer_data)]}}).encode()
    client.content.blobs[sha(layer)] = layer
    client.content.blobs[sha(config)] = config
    manifest = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_IMAGE_MANIFEST,
                           "config": {"mediaType": mt.OCI_IMAGE_CONFIG, "digest": sha(config), "size": len(config)},
                           "layers": [{"mediaType": mt.OCI_LAYER_GZIP, "digest": sha(layer),
                                       "size": len(layer)}]}).encode()
    client.content.blobs[sha(manifest)] = manifest
    return Image(name, Descriptor(mt.OCI_IMAGE_MANIFEST, sha(manifest), len(manifest)))


async def test_export_writes_an_oci_layout_and_import_reads_it_back():
    src = FakeClient()
    img = make_image(src, "registry.test/team/app:v1")
    out = io.BytesIO()
    written = await export_archive(src, out, [img])
    assert written == len(out.getvalue()) and written % 512 == 0
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tf:
        names = tf.getnames()
        index = json.load(tf.extractfile("index.json"))
        docker = json.load(tf.extractfile("manifest.json"))
        for d in src.content.blobs:
            assert tf.extractfile(f"blobs/sha256/{d.split(':')[1]}").read() == src.content.blobs[d]
    assert names[:3] == ["oci-layout", "blobs", "blobs/sha256"]
    entry = index["manifests"][0]
    assert entry["digest"] == img.target.digest
    assert entry["annotations"] == {"io.containerd.image.name": "registry.test/team/app:v1",
                                    "org.opencontainers.image.ref.name": "v1"}
    assert docker[0]["RepoTags"] == ["registry.test/team/app:v1"] and len(docker[0]["Layers"]) == 1

    dst = FakeClient()
    records = await import_archive(dst, io.BytesIO(out.getvalue()), unpack=False)
    assert [r.name for r in records] == ["registry.test/team/app:v1"]
    assert records[0].target.digest == img.target.digest
    assert dst.content.blobs == src.content.blobs
    labels = dst.content.labels[img.target.digest]
    assert labels["containerd.io/gc.ref.content.config"] and labels["containerd.io/gc.ref.content.l.0"]
    # importing again updates the record and writes nothing new
    writes = dst.content.writes
    again = await import_archive(dst, io.BytesIO(out.getvalue()), unpack=False)
    assert [r.name for r in again] == ["registry.test/team/app:v1"] and dst.content.writes == writes


async def test_export_of_a_missing_blob_fails_and_nothing_is_exported_for_no_images():
    src = FakeClient()
    img = make_image(src, "a/b:c")
    del src.content.blobs[next(d for d, b in src.content.blobs.items() if b.startswith(b"\x1f\x8b"))]
    with pytest.raises(NotFound):
        await export_archive(src, io.BytesIO(), [img])
    with pytest.raises(InvalidArgument):
        await export_archive(src, io.BytesIO(), [])


def docker_save_tar(layer: bytes, config: bytes, tags: list[str], gz: bool = False) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w") as tf:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))

        cfg_name = hashlib.sha256(config).hexdigest() + ".json"
        add("0123abcd/layer.tar", layer)
        add("0123abcd/VERSION", b"1.0")
        add(cfg_name, config)
        add("manifest.json", json.dumps([{"Config": cfg_name, "RepoTags": tags,
                                          "Layers": ["0123abcd/layer.tar"]}]).encode())
        add("repositories", b"{}")
    return buf.getvalue()


@pytest.mark.parametrize("compressed", [False, True])
async def test_import_a_docker_archive_builds_a_schema2_manifest(compressed):
    layer = b"plain tar bytes" * 64
    config = json.dumps({"os": "linux", "rootfs": {"type": "layers", "diff_ids": [sha(layer)]}}).encode()
    client = FakeClient()
    data = docker_save_tar(layer, config, ["busybox:latest", "example.com/x:1"], gz=compressed)
    records = await import_archive(client, io.BytesIO(data), unpack=False)
    assert [r.name for r in records] == ["docker.io/library/busybox:latest", "example.com/x:1"]
    target = records[0].target
    assert target.media_type == mt.DOCKER_SCHEMA2_MANIFEST
    manifest = json.loads(client.content.blobs[target.digest])
    assert manifest["config"] == {"mediaType": mt.DOCKER_SCHEMA2_CONFIG, "digest": sha(config), "size": len(config)}
    assert manifest["layers"] == [{"mediaType": mt.DOCKER_SCHEMA2_LAYER, "digest": sha(layer), "size": len(layer)}]
    assert client.content.labels[target.digest]["containerd.io/gc.ref.content.l.0"] == sha(layer)


async def test_import_refuses_what_is_not_an_image_archive_or_names_nothing():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("hello.txt")
        info.size = 2
        tf.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(InvalidArgument, match="not an image archive"):
        await import_archive(FakeClient(), io.BytesIO(buf.getvalue()), unpack=False)

    src = FakeClient()
    img = make_image(src, "a/b:c")
    out = io.BytesIO()
    await export_archive(src, out, [img], docker_manifest=False)
    # strip the names from index.json: only --base-name can name the image now
    rebuilt = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tin, tarfile.open(fileobj=rebuilt, mode="w") as tout:
        for m in tin.getmembers():
            data = tin.extractfile(m).read() if m.isreg() else None
            if m.name == "index.json":
                doc = json.loads(data)
                doc["manifests"][0]["annotations"] = {"org.opencontainers.image.ref.name": "v9"}
                data = json.dumps(doc).encode()
                m.size = len(data)
            tout.addfile(m, io.BytesIO(data) if data is not None else None)
    with pytest.raises(InvalidArgument, match="--base-name"):
        await import_archive(FakeClient(), io.BytesIO(rebuilt.getvalue()), unpack=False)
    named = await import_archive(FakeClient(), io.BytesIO(rebuilt.getvalue()), base_name="example.com/base",
                                 digests=True, unpack=False)
    assert [r.name for r in named] == ["example.com/base:v9", f"example.com/base@{img.target.digest}"]


async def test_import_an_archive_that_ends_right_after_the_last_file():
    """As Go's reader (``ctr import``) does: no padding after the last file, no EOF blocks;
    a cut inside a file's data is still an error."""
    layer = b"plain tar bytes" * 64
    config = json.dumps({"os": "linux", "rootfs": {"type": "layers", "diff_ids": [sha(layer)]}}).encode()
    data = docker_save_tar(layer, config, ["busybox:latest"])
    last = tarfile.open(fileobj=io.BytesIO(data)).getmembers()[-1]
    assert last.name == "repositories"
    end = last.offset_data + last.size
    records = await import_archive(FakeClient(), io.BytesIO(data[:end]), unpack=False)
    assert [r.name for r in records] == ["docker.io/library/busybox:latest"]
    with pytest.raises(InvalidArgument, match="unexpected end of data"):
        await import_archive(FakeClient(), io.BytesIO(data[:end - 1]), unpack=False)
