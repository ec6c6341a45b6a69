"""The content store: blobs addressed by digest, written through resumable ingests.

Two layers, as in containerd (``content/local`` under ``metadata/content.go``):

* :mod:`.local` — :class:`~.local.LocalStore`, the files under
  ``<root>/io.containerd.content.v1.content``: ``blobs/sha256/<hex>`` (read-only, 0444) and
  ``ingest/<sha256 hex of ref>/`` (one directory per write in progress). It knows nothing of
  namespaces. Its writes in progress (:class:`~.ingest.Writer`, the ingest files) are in
  :mod:`.ingest`.
* :mod:`pycontainerd.metadata.content` — the namespaced view over it: a blob is visible in a
  namespace only if that namespace holds a reference record for it.

This module holds the plain types and I/O sizes both layers share (:class:`Info`,
:class:`Status`, :data:`CHUNK`); digests are checked by :mod:`pycontainerd.digest`.

Times are integers, nanoseconds since the Unix epoch; sizes and offsets are bytes.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field

CHUNK = 1 << 20
"""Bytes per read when hashing or copying (containerd's 1 MiB buffer pool)."""
INLINE_IO = 64 << 10
"""Writes and reads up to this many bytes run on the event loop; larger ones in a thread."""


@dataclass
class Info:
    """What is known of a committed blob.

    Attributes:
        digest: ``sha256:<hex>``.
        size: bytes.
        created_at: ns since the epoch (commit time).
        updated_at: ns since the epoch (last label update, or commit time).
        labels: string labels (only the namespaced store keeps labels).
    """

    digest: str
    size: int
    created_at: int = 0
    updated_at: int = 0
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class Status:
    """The state of one write in progress (an ingest).

    Attributes:
        ref: the client's reference for the write.
        offset: bytes written so far.
        total: expected total size in bytes, 0 when unknown.
        expected: the expected digest, ``""`` when not given.
        started_at: ns since the epoch when the ingest began.
        updated_at: ns since the epoch of the last write.
    """

    ref: str
    offset: int = 0
    total: int = 0
    expected: str = ""
    started_at: int = 0
    updated_at: int = 0


async def after(data: AsyncIterable[bytes] | bytes, skip: int) -> AsyncIterator[bytes]:
    """The chunks of ``data`` without its first ``skip`` bytes (a write that resumes: what a
    content writer sends past what the ingest holds; the client's ``Content.Write`` stream
    and the in-process writes of :mod:`pycontainerd.images.pull` alike)."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        if skip < len(data):
            yield bytes(data[skip:])
        return
    async for chunk in data:
        if skip:
            if len(chunk) <= skip:
                skip -= len(chunk)
                continue
            chunk, skip = chunk[skip:], 0
        yield chunk
