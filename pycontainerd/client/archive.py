"""Image archives, client side (containerd's ``images/archive``, as ``ctr images
import/export`` use it): tar files streamed to and from the daemon's content store.

**Export** writes an OCI image layout as a tar::

    oci-layout                  {"imageLayoutVersion": "1.0.0"}
    blobs/sha256/<hex>          every blob of the images (for the selected platforms)
    index.json                  one entry per image: its target descriptor, annotated
                                io.containerd.image.name = <full name>,
                                org.opencontainers.image.ref.name = <tag>
    manifest.json               (unless docker_manifest=False) docker's ``docker load``
                                format: Config, RepoTags, Layers per single-manifest image

Blobs are copied from ``Content.Read`` to the output in chunks; nothing is held whole in
memory except manifests and configs.

**Import** reads either format, sequentially, in one pass:

* an OCI layout (``index.json``; ``oci-archive`` from skopeo, ``ctr images export``,
  ``docker save`` ≥ 25): ``blobs/<alg>/<hex>`` are written to the content store as they
  come (digest and size verified by the daemon). Each index entry becomes an image named
  by its ``io.containerd.image.name`` annotation, else by its
  ``org.opencontainers.image.ref.name`` (a full reference, or a tag joined to
  ``base_name``);
* a docker archive (``manifest.json`` only; ``docker save``, ``skopeo copy
  docker-archive:``): config and layer files are written as blobs (digests computed on the
  way), then a docker schema 2 manifest is made for each entry and the image is named by
  its ``RepoTags`` (normalised: ``busybox:latest`` → ``docker.io/library/busybox:latest``).

Everything happens under a lease; manifests and indexes get containerd's
``containerd.io/gc.ref.content.*`` labels, so the images hold their content once the
lease ends. Then (``unpack=True``) each image is unpacked for ``platform`` — skipped
quietly when the archive does not carry that platform.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import tarfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from .. import imagespec
from ..archive.tarstream import next_member
from ..descriptor import Descriptor
from ..errdefs import AlreadyExists, ContainerdError, InvalidArgument, NotFound
from ..images.walk import children, select_platforms
from ..records.images import Image
from ..remotes import mediatypes, platforms
from ..remotes.reference import parse_normalized
from .archive_plan import (
    DATA_ERRORS,
    METADATA,
    READ_ERRORS,
    blob_path,
    damaged,
    docker_paths,
    is_blob_path,
    normal_name,
    not_a_tar,
    not_an_image,
    plausible,
    scan,
    unreadable,
)
from .images import matcher_for

if TYPE_CHECKING:
    from ._protocols import ClientCore, ImageRef

ANNOTATION_IMAGE_NAME = "io.containerd.image.name"
OCI_LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'
BLOCK = 512
CHUNK = 1 << 20

Progress = Callable[[str, int, int], None]
"""``progress(key, offset, total)``."""


# --- tar writing --------------------------------------------------------------------------


class _TarWriter:
    """A streaming tar writer: headers from :class:`tarfile.TarInfo`, data in chunks."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.written = 0

    async def _write(self, data: bytes) -> None:
        if data:
            await asyncio.to_thread(self.out.write, data)
            self.written += len(data)

    def _info(self, name: str, size: int, kind: bytes = tarfile.REGTYPE) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.size = size if kind == tarfile.REGTYPE else 0
        info.type = kind
        info.mode = 0o444 if kind == tarfile.REGTYPE else 0o755
        info.mtime = 0
        info.uname = info.gname = ""
        return info

    async def directory(self, name: str) -> None:
        await self._write(self._info(name.rstrip("/") + "/", 0, tarfile.DIRTYPE).tobuf(tarfile.PAX_FORMAT))

    async def file(self, name: str, size: int, chunks: AsyncIterator[bytes]) -> None:
        await self._write(self._info(name, size).tobuf(tarfile.PAX_FORMAT))
        done = 0
        async for chunk in chunks:
            done += len(chunk)
            if done > size:
                raise InvalidArgument(f"{name}: more than the {size} bytes announced")
            await self._write(chunk)
        if done != size:
            raise InvalidArgument(f"{name}: {done} bytes instead of {size}")
        pad = -size % BLOCK
        await self._write(b"\0" * pad)

    async def data(self, name: str, data: bytes) -> None:
        async def one() -> AsyncIterator[bytes]:
            yield data

        await self.file(name, len(data), one())

    async def close(self) -> None:
        await self._write(b"\0" * (2 * BLOCK))
        flush = getattr(self.out, "flush", None)
        if flush is not None:
            await asyncio.to_thread(flush)


@dataclass(frozen=True)
class ExportedImage:
    name: str
    target: Descriptor


async def export_archive(client: ClientCore, out: IO[bytes], images: list[Image], *, platform: str | None = None,
                         all_platforms: bool = False, docker_manifest: bool = True,
                         skip_non_distributable: bool = False, progress: Progress | None = None) -> int:
    """Write ``images`` (records or :class:`AsyncImage`) as one OCI layout tar to ``out``
    (a binary file object); see module doc. Returns the bytes written.

    ``platform``/``all_platforms`` select the manifests of an index that are exported
    (default: this host's platform). Raises ``NotFound`` for a blob the content store lacks.
    """
    if not images:
        raise InvalidArgument("no images to export")
    matcher = matcher_for(platform, all_platforms)
    blobs: dict[str, Descriptor] = {}
    docker_entries: list[dict[str, Any]] = []
    index_entries: list[dict[str, Any]] = []

    async def read_json(desc: Descriptor) -> dict:
        return imagespec.parse_json(await client.content.read_all(desc.digest), f"manifest {desc.digest}")

    for img in images:
        target = img.target
        order: list[Descriptor] = []
        todo = [target]
        manifests: list[tuple[Descriptor, dict]] = []
        while todo:
            desc = todo.pop(0)
            if skip_non_distributable and mediatypes.is_non_distributable(desc.media_type):
                continue
            order.append(desc)
            if mediatypes.is_manifest(desc.media_type) or mediatypes.is_index(desc.media_type):
                doc = await read_json(desc)
                subs = children(desc, doc)
                if mediatypes.is_index(desc.media_type):
                    subs = select_platforms(subs, matcher, 0)
                    if not subs:
                        raise NotFound(f"image {img.name}: no manifest for platform "
                                       f"{platform or platforms.default_string()}")
                else:
                    manifests.append((desc, doc))
                todo.extend(subs)
        for d in order:
            blobs.setdefault(d.digest, d)
        annotations = {ANNOTATION_IMAGE_NAME: img.name}
        try:
            ref = parse_normalized(img.name)
            if ref.tag:
                annotations[mediatypes.ANNOTATION_REF_NAME] = ref.tag
        except InvalidArgument:
            pass
        entry = target.to_dict()
        entry["annotations"] = {**entry.get("annotations", {}), **annotations}
        index_entries.append(entry)
        if docker_manifest and len(manifests) == 1:
            _, doc = manifests[0]
            config, layers = imagespec.manifest_children(doc)
            try:
                tag = [parse_normalized(img.name).familiar()]
            except InvalidArgument:
                tag = []
            docker_entries.append({"Config": blob_path(config.digest), "RepoTags": tag,
                                   "Layers": [blob_path(x.digest) for x in layers]})

    writer = _TarWriter(out)
    await writer.data("oci-layout", OCI_LAYOUT)
    await writer.directory("blobs")
    for alg in sorted({d.split(":", 1)[0] for d in blobs}):
        await writer.directory(f"blobs/{alg}")
    for digest, desc in blobs.items():
        key = mediatypes.ref_key(desc)

        async def stream(d: Descriptor = desc, key: str = key) -> AsyncIterator[bytes]:
            done = 0
            async for chunk in client.content.read(d.digest):
                done += len(chunk)
                if progress is not None:
                    progress(key, done, d.size)
                yield chunk

        await writer.file(blob_path(digest), desc.size, stream())
    index = {"schemaVersion": 2, "mediaType": mediatypes.OCI_IMAGE_INDEX, "manifests": index_entries}
    await writer.data("index.json", json.dumps(index, separators=(",", ":")).encode())
    if docker_entries:
        await writer.data("manifest.json", json.dumps(docker_entries, separators=(",", ":")).encode())
    await writer.close()
    return writer.written


# --- import -------------------------------------------------------------------------------


@dataclass
class _File:
    """A non-blob file of the archive, written to the content store."""

    digest: str
    size: int
    head: bytes
    data: bytes | None  # kept for small JSON files


def _detect_layer_type(head: bytes, oci: bool = False) -> str:
    if head[:2] == b"\x1f\x8b":
        return mediatypes.OCI_LAYER_GZIP if oci else mediatypes.DOCKER_SCHEMA2_LAYER_GZIP
    if head[:4] == b"\x28\xb5\x2f\xfd":
        return mediatypes.OCI_LAYER_ZSTD
    return mediatypes.OCI_LAYER if oci else mediatypes.DOCKER_SCHEMA2_LAYER


def _image_name(annotations: dict[str, str], base_name: str | None) -> str:
    name = annotations.get(ANNOTATION_IMAGE_NAME, "")
    if name:
        return name
    ref = annotations.get(mediatypes.ANNOTATION_REF_NAME, "")
    if not ref:
        return ""
    if base_name:
        if ":" in ref or "/" in ref or "@" in ref:  # a full reference stays one
            pass
        else:
            return f"{base_name}:{ref}"
    if "/" in ref or ":" in ref:
        try:
            return str(parse_normalized(ref))
        except InvalidArgument:
            return ""
    return ""


async def import_archive(client: ClientCore, source: IO[bytes], *, base_name: str | None = None, digests: bool = False,
                         index_name: str | None = None, platform: str | None = None, all_platforms: bool = False,
                         unpack: bool = True, snapshotter: str = "overlayfs",
                         progress: Progress | None = None) -> list[ImageRef]:
    """Import the tar read from ``source`` (a binary file object, possibly gzip-compressed);
    returns the image records created or updated, in archive order. See module doc.

    ``digests``: also name each image ``<base_name or name>@<digest>``. ``index_name``: also
    record the whole index under that name (OCI layouts). Raises ``InvalidArgument`` for an
    archive that is neither format or names no image.
    """
    plan = await asyncio.to_thread(scan, source)  # refuses a non-image file before any upload
    try:
        tf = await asyncio.to_thread(tarfile.open, fileobj=source, mode="r|*")
    except DATA_ERRORS as exc:
        raise not_a_tar() from exc
    files: dict[str, _File] = {}
    blob_files: dict[str, str] = {}  # archive path → digest
    index_doc: dict | None = None
    docker_doc: list | None = None
    docker_refs: set[str] | None = None  # paths manifest.json names, once read
    created: list[ImageRef] = []

    def wanted(name: str) -> bool:
        if plan is not None:
            return name in plan.wanted
        if docker_refs is not None:
            return name in docker_refs or (index_doc is not None and is_blob_path(name))
        return plausible(name)

    async with client.lease():
        last = ""
        try:
            member = None
            while True:
                # Go's reader rules: the archive may end right after the last file's data
                try:
                    member = await asyncio.to_thread(next_member, tf, member)
                except READ_ERRORS as exc:
                    raise unreadable(last, exc) from exc
                if member is None:
                    break
                name = normal_name(member.name)
                last = name or member.name
                if not member.isreg() or not name or not (name in METADATA or wanted(name)):
                    continue
                fobj = await asyncio.to_thread(tf.extractfile, member)
                if fobj is None:
                    continue
                parts = name.split("/")
                if name in METADATA:
                    try:
                        data = await asyncio.to_thread(fobj.read, imagespec.MAX_MANIFEST_SIZE + 1)
                    except DATA_ERRORS as exc:
                        raise damaged(name, exc) from exc
                    if name == "index.json":
                        index_doc = imagespec.parse_json(data, "index.json")
                    elif name == "manifest.json":
                        try:
                            docker_doc = json.loads(data)
                        except ValueError as exc:
                            raise InvalidArgument(f"manifest.json is not valid JSON: {exc}") from exc
                        if not isinstance(docker_doc, list):
                            raise InvalidArgument("manifest.json is not a JSON list")
                        docker_refs = docker_paths(docker_doc)
                    elif name == "oci-layout":
                        layout = imagespec.parse_json(data, "oci-layout")
                        if layout.get("imageLayoutVersion") != "1.0.0":
                            raise InvalidArgument(
                                f"unsupported OCI layout version {layout.get('imageLayoutVersion')!r}")
                    continue
                if len(parts) == 3 and parts[0] == "blobs":
                    digest = f"{parts[1]}:{parts[2]}"
                    await _write_blob(client, fobj, member.size, digest, name, progress)
                    blob_files[name] = digest
                    continue
                files[name] = await _write_file(client, fobj, member.size, name, progress)
        except tarfile.TarError as exc:  # a file's data cut short (tarfile's own reader)
            raise InvalidArgument(f"corrupt archive: {exc}") from exc
        finally:
            await asyncio.to_thread(tf.close)

        records: list[tuple[str, Descriptor]] = []
        if index_doc is not None:
            entries = imagespec.index_children(index_doc)
            raw_entries = index_doc.get("manifests") or []
            for desc, raw in zip(entries, raw_entries, strict=True):
                annotations = dict(raw.get("annotations") or {})
                name = _image_name(annotations, base_name)
                if name:
                    records.append((name, desc))
                if digests:
                    base = base_name or (name.split("@")[0].rsplit(":", 1)[0] if name else "")
                    if base:
                        records.append((f"{base}@{desc.digest}", desc))
            if index_name:
                raw = json.dumps(index_doc, separators=(",", ":")).encode()
                digest = await client.content.write(f"import-index-{time.time_ns()}", raw,
                                                    labels=imagespec.children_labels(True, index_doc))
                records.append((index_name, Descriptor(mediatypes.OCI_IMAGE_INDEX, digest, len(raw))))
        elif docker_doc is not None:
            for i, entry in enumerate(docker_doc):
                desc = await _docker_manifest(client, entry, files, blob_files, i)
                tags = entry.get("RepoTags") or []
                for tag in tags:
                    records.append((str(parse_normalized(tag)), desc))
                if digests or not tags:
                    if base_name:
                        records.append((f"{base_name}@{desc.digest}", desc))
        else:
            raise not_an_image()
        if not records:
            raise InvalidArgument("the archive names no image: give a base name (--base-name) "
                                  "or an index name (--index-name)")

        for _, desc in records:
            await _label_children(client, desc)
        for name, desc in records:
            image = Image(name, desc)
            try:
                rec = await client.create_image(image)
            except AlreadyExists:
                rec = await client.update_image(image, "target")
            created.append(rec)
        if unpack:
            for rec in created:
                try:
                    if progress is not None:
                        progress(f"unpacking {rec.name}", 0, 0)
                    from ..images.pull import unpack_image

                    await unpack_image(client, rec, platform=platform, snapshotter=snapshotter)
                except NotFound:
                    pass  # the archive does not carry this platform
    return created


async def _read_chunks(fobj, name: str) -> AsyncIterator[bytes]:
    """A member's data in chunks; a read error names the member (a truncated archive)."""
    while True:
        try:
            chunk = await asyncio.to_thread(fobj.read, CHUNK)
        except DATA_ERRORS as exc:
            raise damaged(name, exc) from exc
        if not chunk:
            return
        yield chunk


async def _upload(client, ref: str, chunks: AsyncIterator[bytes], **kw: Any) -> str:
    """``client.content.write``; when the archive fails under it, the partial ingest is
    aborted (an import is not resumed from the same broken file)."""
    try:
        return await client.content.write(ref, chunks, **kw)
    except InvalidArgument:
        with contextlib.suppress(ContainerdError):
            await client.content.abort(ref)
        raise


async def _write_blob(client, fobj, size: int, digest: str, name: str, progress: Progress | None) -> None:
    key = f"import-{digest}"
    done = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal done
        async for chunk in _read_chunks(fobj, name):
            done += len(chunk)
            if progress is not None:
                progress(digest, done, size)
            yield chunk

    try:
        await client.content.info(digest)
        return  # present already (the tar stream skips the unread bytes)
    except NotFound:
        pass
    await _upload(client, key, chunks(), expected=digest, total=size)


async def _write_file(client, fobj, size: int, name: str, progress: Progress | None) -> _File:
    h = hashlib.sha256()
    head = b""
    keep = name.endswith(".json") and size <= imagespec.MAX_MANIFEST_SIZE
    kept = bytearray()
    done = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal head, done
        async for chunk in _read_chunks(fobj, name):
            if not head:
                head = chunk[:8]
            h.update(chunk)
            if keep:
                kept.extend(chunk)
            done += len(chunk)
            if progress is not None:
                progress(name, done, size)
            yield chunk

    digest = await _upload(client, f"import-{time.time_ns()}-{os.getpid()}-{abs(hash(name))}", chunks(),
                           total=size)
    if digest != "sha256:" + h.hexdigest():
        raise InvalidArgument(f"{name}: the daemon computed {digest}, we computed sha256:{h.hexdigest()}")
    return _File(digest, size, head, bytes(kept) if keep else None)


async def _docker_manifest(client, entry: dict, files: dict[str, _File], blob_files: dict[str, str],
                           index: int) -> Descriptor:
    """Make (and store) a docker schema 2 manifest for one ``manifest.json`` entry."""
    if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str):
        raise InvalidArgument(f"manifest.json entry {index}: no Config")

    async def descriptor_of(path: str, what: str) -> tuple[Descriptor, bytes]:
        p = normal_name(path)
        if p in blob_files:
            digest = blob_files[p]
            info = await client.content.info(digest)
            head = b""
            async for chunk in client.content.read(digest, 0, 8):
                head += chunk
            return Descriptor("", digest, info.size), head
        f = files.get(p)
        if f is None:
            raise InvalidArgument(f"manifest.json entry {index}: {what} {path!r} is not in the archive")
        return Descriptor("", f.digest, f.size), f.head

    cfg, _ = await descriptor_of(entry["Config"], "config")
    config = Descriptor(mediatypes.DOCKER_SCHEMA2_CONFIG, cfg.digest, cfg.size)
    layers = []
    for path in entry.get("Layers") or []:
        d, head = await descriptor_of(path, "layer")
        layers.append(Descriptor(_detect_layer_type(head), d.digest, d.size))
    doc = {"schemaVersion": 2, "mediaType": mediatypes.DOCKER_SCHEMA2_MANIFEST,
           "config": config.to_dict(), "layers": [x.to_dict() for x in layers]}
    raw = json.dumps(doc, separators=(",", ":")).encode()
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    await client.content.write(f"import-manifest-{digest}", raw, expected=digest, total=len(raw),
                               labels=imagespec.children_labels(False, doc))
    return Descriptor(mediatypes.DOCKER_SCHEMA2_MANIFEST, digest, len(raw))


async def _label_children(client, target: Descriptor) -> None:
    """Give every manifest and index under ``target`` its gc reference labels."""
    todo = [target]
    seen: set[str] = set()
    while todo:
        desc = todo.pop()
        if desc.digest in seen:
            continue
        seen.add(desc.digest)
        if not (mediatypes.is_manifest(desc.media_type) or mediatypes.is_index(desc.media_type)):
            continue
        try:
            doc = imagespec.parse_json(await client.content.read_all(desc.digest), f"manifest {desc.digest}")
        except NotFound:
            continue
        is_index = mediatypes.is_index(desc.media_type)
        labels = imagespec.children_labels(is_index, doc)
        if labels:
            await client.content.update_labels(desc.digest, labels)
        todo.extend(children(desc, doc))
