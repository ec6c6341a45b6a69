"""The :class:`~pycontainerd.images.pull.PullTarget` of the daemon's own stores: pull and
unpack in-process (the CRI plugin's way), with no client and no socket in between.

Calls run in the caller's namespace (:data:`pycontainerd.namespaces.current`) and, inside
the lease the ``lease`` factory opens, under that lease, exactly as the same calls over
gRPC would."""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

from ..content import after
from ..errdefs import AlreadyExists, FailedPrecondition
from ..records.images import Image

if TYPE_CHECKING:
    from ..metadata.content import ContentStore
    from ..metadata.images import ImageStore
    from ..metadata.snapshots import SnapshotStore


class LocalContent:
    """The puller's content calls over the namespaced content store."""

    def __init__(self, store: ContentStore) -> None:
        self.store = store

    async def info(self, digest: str):
        return await self.store.info(digest)

    async def status(self, ref: str):
        return await self.store.status(ref)

    async def hold(self, digest: str) -> bool:
        return await self.store.hold(digest)

    async def read_all(self, digest: str) -> bytes:
        return await self.store.read(digest)

    async def update_labels(self, digest: str, labels: Mapping[str, str]):
        return await self.store.update(digest, dict(labels), [f"labels.{k}" for k in labels])

    async def write(self, ref: str, data: AsyncIterable[bytes] | bytes, *, expected: str = "", total: int = 0,
                    labels: Mapping[str, str] | None = None, progress: Callable[[int, int], None] | None = None,
                    start: int = 0) -> str:
        """Write a blob under ``ref`` from byte ``start`` of ``data`` on, resuming after what
        the ingest holds, and commit it (the client's ``Content.write``, in-process). A blob
        that exists already counts as success."""
        if expected and await self.store.hold(expected):
            return expected
        writer = await self.store.writer(ref, total, expected)
        try:
            offset = writer.status().offset
            if offset < start:
                raise FailedPrecondition(f"ingest {ref} holds {offset} bytes, cannot continue from {start}")
            async for chunk in after(data, offset - start):
                offset += await writer.write(chunk)
                if progress is not None:
                    progress(offset, total)
            try:
                digest = await writer.commit(total, expected, dict(labels or {}) or None)
            except AlreadyExists:
                if expected:
                    return expected
                raise
        finally:
            await writer.close()
        if expected and digest != expected:
            raise FailedPrecondition(f"unexpected digest: {digest} != {expected}")
        return digest


class LocalTarget:
    """Pull and unpack into the daemon's stores.

    Args:
        content: the namespaced content store.
        images: the image store.
        snapshots: the snapshot stores by snapshotter name.
        differ: applies a layer onto mounts (``apply(desc, mounts)``).
        lease: opens the lease everything pulled is kept under while it runs.
    """

    def __init__(self, content: ContentStore, images: ImageStore, snapshots: Mapping[str, SnapshotStore],
                 differ: Any, lease: Callable[[], AbstractAsyncContextManager[Any]]) -> None:
        self.content = LocalContent(content)
        self.images = images
        self.snapshots = snapshots
        self.diff = differ
        self._lease = lease

    def lease(self) -> AbstractAsyncContextManager[Any]:
        return self._lease()

    def snapshotter(self, name: str) -> SnapshotStore:
        store = self.snapshots.get(name)
        if store is None:
            raise FailedPrecondition(f"snapshotter not loaded: {name}")
        return store

    async def create_image(self, image: Image) -> Image:
        return await self.images.create(image)

    async def update_image(self, image: Image, *paths: str) -> Image:
        return await self.images.update(image, list(paths))
