"""Pull and unpack, as containerd 1.6's client does them (DESIGN §5 Pull), written once for
every caller: the client library passes its ``AsyncClient`` (calls over gRPC), the CRI
plugin an adapter over the daemon's in-process services (``pycontainerd.cri.daemon``).
Both satisfy :class:`PullTarget`, the few calls used here.

``pull``: resolve → fetch index/manifest/config/layers into the target's content store
(each blob verified by digest and size; an interrupted ingest resumes by ref) under a
lease → create (or update) the image record → optionally unpack → release the lease.

``unpack``: for each layer of the platform's manifest, in order: if the layer's chainID is
already a committed snapshot, skip; else prepare a snapshot (parent = previous chainID,
label ``containerd.io/snapshot.ref``) → apply the layer with the differ → check the applied
digest is the config's diffID → commit the snapshot as the chainID. Finally the config blob
gets the label ``containerd.io/gc.ref.snapshot.<snapshotter>`` (so GC keeps the snapshots
while the image exists) and each layer ``containerd.io/uncompressed``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .. import imagespec
from ..descriptor import Descriptor
from ..errdefs import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from ..records.images import Image
from ..remotes import mediatypes, platforms
from ..remotes.fetch import fetch_image
from ..remotes.reference import normalize
from .walk import manifest_for

if TYPE_CHECKING:  # the HTTP stack (httpx) loads with the first pull that makes its own resolver
    from ..remotes.resolver import Resolver

Progress = Callable[[str, int, int], None]
"""``progress(ref_key, offset, total)`` after each chunk written."""


class ContentTarget(Protocol):
    """The content store calls pull and unpack make."""

    async def info(self, digest: str) -> Any: ...

    async def hold(self, digest: str) -> bool:
        """True if the blob exists, and then the current lease holds it."""
        ...

    async def status(self, ref: str) -> Any:
        """The ingest ``ref`` (``offset``, ``expected``); ``NotFound`` when there is none."""

    async def read_all(self, digest: str) -> bytes: ...

    async def update_labels(self, digest: str, labels: Mapping[str, str]) -> Any: ...

    async def write(self, ref: str, data: AsyncIterable[bytes] | bytes, *, expected: str = "", total: int = 0,
                    labels: Mapping[str, str] | None = None, progress: Callable[[int, int], None] | None = None,
                    start: int = 0) -> str:
        """Write ``data`` (whose first byte is byte ``start`` of the blob) under ``ref``,
        resuming after what the ingest holds, and commit it; a blob that exists counts as
        success. Returns the digest."""


class SnapshotTarget(Protocol):
    """The snapshotter calls unpack makes."""

    async def stat(self, key: str) -> Any: ...

    async def prepare(self, key: str, parent: str, labels: Mapping[str, str] | None = None) -> Sequence[Any]: ...

    async def commit(self, name: str, key: str, labels: Mapping[str, str] | None = None) -> Any: ...

    async def remove(self, key: str) -> Any: ...


class DifferTarget(Protocol):
    async def apply(self, desc: Descriptor, mounts: Sequence[Any]) -> Descriptor: ...


class PullTarget(Protocol):
    """Where an image is pulled to: a content store, image records, snapshotters, a differ,
    and leases (everything made inside ``lease()`` is kept from garbage collection)."""

    content: ContentTarget
    diff: DifferTarget

    def lease(self) -> AbstractAsyncContextManager[Any]: ...

    def snapshotter(self, name: str) -> SnapshotTarget: ...

    async def create_image(self, image: Image) -> Image: ...

    async def update_image(self, image: Image, *paths: str) -> Image: ...


@dataclass(frozen=True)
class Unpacked:
    """Result of unpacking: the top chainID and how many layers were applied (not reused)."""

    chain_id: str
    applied: int
    reused: int


async def pull(client: PullTarget, ref: str, *, platform: str | None = None, unpack: bool = True,
               snapshotter: str = "overlayfs", resolver: Resolver | None = None,
               plain_http: bool | list[str] = False, progress: Progress | None = None,
               matcher: platforms.MatchComparer | None = None) -> Image:
    """Fetch ``ref`` into ``client`` and record the image; see module doc. ``matcher``
    overrides the platforms fetched from an index (``platforms.ALL``: every one).

    Raises the remotes' typed errors (``NotFound``, ``Unauthorized``, …), ``FailedPrecondition``
    for digest mismatches, ``InvalidArgument`` for malformed manifests.
    """
    name = normalize(ref)
    if matcher is None:
        matcher = platforms.only(platform) if platform else platforms.default()
    own = resolver is None
    if own:
        from ..remotes.resolver import Resolver

        resolver = Resolver(plain_http=plain_http)
    try:
        async with client.lease():
            async def write_blob(desc: Descriptor, stream: AsyncIterator[bytes]) -> None:
                key = mediatypes.ref_key(desc)
                labels: dict[str, str] = {}
                data: AsyncIterator[bytes] | bytes = stream
                if mediatypes.is_manifest(desc.media_type) or mediatypes.is_index(desc.media_type):
                    raw = b"".join([chunk async for chunk in stream])
                    labels = imagespec.children_labels(mediatypes.is_index(desc.media_type),
                                                       imagespec.parse_json(raw, f"manifest {desc.digest}"))
                    data = raw
                if await have(desc):
                    if labels:
                        await client.content.update_labels(desc.digest, labels)
                    raise AlreadyExists(desc.digest)
                start = getattr(stream, "offset", 0) if data is stream else 0
                report = (lambda off, total: progress(key, off, total)) if progress else None
                await client.content.write(key, data, expected=desc.digest, total=desc.size, labels=labels,
                                           progress=report, start=start)

            async def have(desc: Descriptor) -> bool:
                # held by the pull's lease at once: a collection running before the image
                # record exists must not take a blob this pull decided not to fetch
                return await client.content.hold(desc.digest)

            async def resume_at(desc: Descriptor) -> int:
                try:
                    status = await client.content.status(mediatypes.ref_key(desc))
                except NotFound:
                    return 0
                return status.offset if status.expected in ("", desc.digest) else 0

            result = await fetch_image(resolver, name, matcher, write_blob, have=have, resume_at=resume_at)
            image = Image(name=name, target=result.target)
            try:
                image = await client.create_image(image)
            except AlreadyExists:
                image = await client.update_image(image, "target")
            if unpack:
                await unpack_image(client, image, platform=platform, snapshotter=snapshotter)
            return image
    finally:
        if own:
            await resolver.aclose()


async def unpack_image(client: PullTarget, image: Image, *, platform: str | None = None,
                       snapshotter: str = "overlayfs") -> Unpacked:
    """Unpack ``image`` into ``snapshotter``; see module doc."""
    snaps = client.snapshotter(snapshotter)
    differ = client.diff
    _, manifest = await manifest_for(client, image.target, platform, image.name)
    config, layers = imagespec.manifest_children(manifest)
    config_doc = imagespec.parse_json(await client.content.read_all(config.digest), f"config {config.digest}")
    diff_ids = imagespec.diff_ids(config_doc)
    if len(diff_ids) != len(layers):
        raise InvalidArgument(f"image {image.name}: {len(layers)} layers but {len(diff_ids)} diff_ids in config")
    chain = imagespec.chain_ids(diff_ids)
    applied = reused = 0
    async with client.lease():
        parent = ""
        for layer, diff_id, chain_id in zip(layers, diff_ids, chain, strict=True):
            try:
                await snaps.stat(chain_id)
                reused += 1
                parent = chain_id
                continue
            except NotFound:
                pass
            key = f"extract-{time.time_ns()}-{secrets.token_hex(4)} {chain_id}"
            try:
                mounts = await snaps.prepare(key, parent, {imagespec.LABEL_SNAPSHOT_REF: chain_id})
            except AlreadyExists:
                reused += 1  # committed meanwhile (by another unpack or namespace)
                parent = chain_id
                continue
            try:
                applied_desc = await differ.apply(layer, mounts)
                if applied_desc.digest != diff_id:
                    raise FailedPrecondition(
                        f"wrong diff id calculated on extraction {applied_desc.digest}, expected {diff_id}")
                try:
                    await snaps.commit(chain_id, key, {imagespec.LABEL_SNAPSHOT_REF: chain_id})
                except AlreadyExists:
                    await snaps.remove(key)
            except BaseException:
                try:
                    await snaps.remove(key)
                except Exception:
                    pass
                raise
            await client.content.update_labels(layer.digest, {imagespec.LABEL_UNCOMPRESSED: diff_id})
            applied += 1
            parent = chain_id
        if chain:
            await client.content.update_labels(config.digest,
                                               {f"containerd.io/gc.ref.snapshot.{snapshotter}": chain[-1]})
    return Unpacked(chain[-1] if chain else "", applied, reused)
