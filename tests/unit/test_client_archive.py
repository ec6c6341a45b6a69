"""Image archives without a daemon: export writes an OCI layout tar (plus docker's
manifest.json) streamed from a content store; import reads it back, and reads docker
archives (``docker save`` layout), in one pass, labelling manifests for GC."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
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
        self.aborted: list[str] = []

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

    async def abort(self, ref) -> None:
        self.aborted.append(ref)

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


# --- issue 18.5: bad archives are refused early and name what is broken ---------------------


class Stream(io.RawIOBase):
    """A non-seekable source (as stdin is) over ``chunks``; counts the bytes read."""

    def __init__(self, chunks) -> None:
        self.chunks = iter(chunks)
        self.pending = b""
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        while not self.pending:
            try:
                self.pending = next(self.chunks)
            except StopIteration:
                return 0
        n = min(len(buf), len(self.pending))
        buf[:n], self.pending = self.pending[:n], self.pending[n:]
        self.read_bytes += n
        return n


class Counted(io.FileIO):
    """A real file that counts the bytes read from it."""

    read_bytes = 0

    def readinto(self, buf) -> int:
        n = super().readinto(buf)
        self.read_bytes += n or 0
        return n

    def read(self, size=-1):
        data = super().read(size)
        self.read_bytes += len(data)
        return data


async def export_bytes(src: FakeClient, img: Image) -> bytes:
    out = io.BytesIO()
    await export_archive(src, out, [img])
    return out.getvalue()


def layer_digest(src: FakeClient) -> str:
    return next(d for d, b in src.content.blobs.items() if b.startswith(b"\x1f\x8b"))


@pytest.mark.parametrize("seekable", [True, False])
async def test_random_bytes_are_not_an_image_archive(seekable):
    data = os.urandom(256 << 10)
    client = FakeClient()
    source = io.BytesIO(data) if seekable else Stream([data])
    with pytest.raises(InvalidArgument) as err:
        await import_archive(client, source, unpack=False)
    assert str(err.value) == "not an image archive: not a tar file (plain, gzip, bzip2 or xz): invalid argument"
    assert client.content.writes == 0


@pytest.mark.parametrize("seekable", [True, False])
async def test_truncated_export_names_the_blob_it_ends_inside(tmp_path, seekable):
    src = FakeClient()
    img = make_image(src, "registry.test/team/big:v1", layer_data=os.urandom(64 << 10))
    whole = await export_bytes(src, img)
    layer = layer_digest(src)
    with tarfile.open(fileobj=io.BytesIO(whole)) as tf:
        member = tf.getmember(f"blobs/sha256/{layer.split(':')[1]}")
    cut = whole[:member.offset_data + member.size // 2]  # in the middle of the layer, like a cut download
    path = tmp_path / "cut.tar"
    path.write_bytes(cut)
    client = FakeClient()
    chunks = [cut[i:i + 4096] for i in range(0, len(cut), 4096)]
    with open(path, "rb") if seekable else contextlib.nullcontext(Stream(chunks)) as source:
        with pytest.raises(InvalidArgument) as err:
            await import_archive(client, source, unpack=False)
    msg = str(err.value)
    assert msg.startswith(f"blobs/sha256/{layer.split(':')[1]}: the archive ends or is damaged inside this member"), msg
    assert msg.count("the archive ends") == 1 and msg.count("invalid argument") <= 1, msg  # said once
    assert layer not in client.content.blobs and not client.images
    if seekable:
        assert client.content.writes == 0  # refused before anything was uploaded
    else:
        assert client.content.aborted == [f"import-{layer}"]  # the partial ingest does not stay


def sparse_non_image_tar(path, size: int) -> None:
    """A tar holding one ``size``-byte file of zeros, written sparse (a hole, not ``size`` bytes)."""
    info = tarfile.TarInfo("disk.img")
    info.size = size
    with open(path, "wb") as f:
        f.write(info.tobuf(tarfile.PAX_FORMAT))
        f.seek(size + (-size % 512), os.SEEK_CUR)
        f.write(b"\0" * 1024)


async def test_a_1gib_tar_that_is_not_an_image_is_refused_before_reading_it(tmp_path):
    path = tmp_path / "not-an-image.tar"
    sparse_non_image_tar(path, 1 << 30)
    assert os.stat(path).st_blocks * 512 < (1 << 20)  # sparse: the test writes no GiB to disk
    client = FakeClient()
    with Counted(path, "rb") as source:
        with pytest.raises(InvalidArgument, match="^not an image archive: no index.json"):
            await import_archive(client, source, unpack=False)
        assert source.read_bytes < (1 << 20)  # the headers only, not the GiB
    assert client.content.writes == 0


async def test_a_1gib_non_image_stream_uploads_nothing():
    info = tarfile.TarInfo("disk.img")
    info.size = 1 << 30
    zeros = bytes(1 << 20)
    chunks = [info.tobuf(tarfile.PAX_FORMAT), *(zeros for _ in range(1024)), bytes(1024)]
    client = FakeClient()
    with pytest.raises(InvalidArgument, match="^not an image archive: no index.json"):
        await import_archive(client, Stream(chunks), unpack=False)
    assert client.content.writes == 0


async def test_blobs_the_index_does_not_reference_are_not_uploaded():
    """The index comes last (as ctr and docker write it); a seekable archive is read for its
    index first, so an unreferenced blob before it is skipped, not uploaded."""
    src = FakeClient()
    img = make_image(src, "registry.test/team/app:v2")
    stray = os.urandom(4096)
    rebuilt = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(await export_bytes(src, img))) as tin, \
            tarfile.open(fileobj=rebuilt, mode="w") as tout:
        for m in tin.getmembers():
            if m.name == "blobs/sha256":
                tout.addfile(m)
                extra = tarfile.TarInfo(f"blobs/sha256/{hashlib.sha256(stray).hexdigest()}")
                extra.size = len(stray)
                tout.addfile(extra, io.BytesIO(stray))
                continue
            tout.addfile(m, tin.extractfile(m) if m.isreg() else None)
    client = FakeClient()
    records = await import_archive(client, io.BytesIO(rebuilt.getvalue()), unpack=False)
    assert [r.name for r in records] == ["registry.test/team/app:v2"]
    assert set(client.content.blobs) == set(src.content.blobs) and sha(stray) not in client.content.blobs


async def test_a_stream_with_index_and_manifest_before_the_blobs_imports():
    """From stdin, an archive may name its images (index.json and docker's manifest.json)
    before it holds the blobs: every blob the index reaches is still taken."""
    src = FakeClient()
    img = make_image(src, "registry.test/team/early:v1")
    whole = await export_bytes(src, img)
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(whole)) as tf, tarfile.open(fileobj=out, mode="w") as tw:
        members = tf.getmembers()
        first = [m for m in members if m.name in ("index.json", "manifest.json", "oci-layout")]
        for m in first + [m for m in members if m not in first]:
            tw.addfile(m, tf.extractfile(m) if m.isreg() else None)
    data = out.getvalue()
    dst = FakeClient()
    records = await import_archive(dst, Stream([data[i:i + 4096] for i in range(0, len(data), 4096)]), unpack=False)
    assert [r.name for r in records] == ["registry.test/team/early:v1"]
    assert dst.content.blobs == src.content.blobs
