"""Push a whole image (containerd's ``remotes.PushContent``): children before parents —
layers and config, then the manifest(s), then the index last — so the registry never sees
a manifest whose blobs are missing. The root manifest or index is put under the
reference's tag (or by digest when the reference has none).

``read_blob(desc)`` is injected: it returns the blob's bytes or an async iterator of them,
and may be called again for a retried request. Blobs run concurrently, at most
``resolver.max_concurrent_downloads`` at a time; an index's children can be narrowed with
``platform_matcher`` (entries without local content must be filtered out this way, as the
registry checks that every manifest an index names exists).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Sequence
from typing import NamedTuple

from pycontainerd.descriptor import Descriptor
from pycontainerd.images.walk import children, select_platforms
from pycontainerd.log import get_logger
from pycontainerd.remotes import mediatypes, platforms
from pycontainerd.remotes.fetch import _first, validate_media_type
from pycontainerd.remotes.pusher import PushResult

log = get_logger("remotes")

ReadBlob = Callable[[Descriptor], "bytes | AsyncIterator[bytes]"]


class PushImageResult(NamedTuple):
    target: Descriptor
    results: list[tuple[Descriptor, PushResult]]
    """Each descriptor pushed and what happened (``exists``/``mounted``/``uploaded``)."""


async def _read_all(source: bytes | AsyncIterator[bytes]) -> bytes:
    if isinstance(source, bytes):
        return source
    return b"".join([chunk async for chunk in source])


async def push_image(
    resolver,
    ref: str,
    target: Descriptor,
    read_blob: ReadBlob,
    *,
    platform_matcher: platforms.MatchComparer | None = None,
    mount_from: Sequence[str] | str | None = None,
    chunk_size: int | None = None,
) -> PushImageResult:
    """Push the image rooted at ``target`` to ``ref`` (see module doc)."""
    r = resolver.parse(ref)
    pusher = resolver.pusher(r)
    results: list[tuple[Descriptor, PushResult]] = []
    semaphore = asyncio.Semaphore(resolver.max_concurrent_downloads)
    matcher = platform_matcher or platforms.ALL

    async def push_one(desc: Descriptor, content, tag: str | None) -> None:
        res = await pusher.push(desc, content, tag=tag, mount_from=mount_from, chunk_size=chunk_size)
        log.debug("pushed", digest=desc.digest, result=res, ref=str(r))
        results.append((desc, res))

    async def blob(desc: Descriptor) -> None:
        async with semaphore:
            await push_one(desc, lambda: read_blob(desc), None)

    async def walk(desc: Descriptor, tag: str | None) -> None:
        if mediatypes.is_manifest(desc.media_type) or mediatypes.is_index(desc.media_type):
            data = await _read_all(read_blob(desc))
            doc = validate_media_type(data, desc.media_type)
            subs = children(desc, doc)
            if mediatypes.is_index(desc.media_type):
                subs = select_platforms(subs, matcher, 0)
            async with asyncio.TaskGroup() as tg:
                for sub in subs:
                    tg.create_task(walk(sub, None))
            await push_one(desc, data, tag)
        else:
            await blob(desc)

    try:
        await walk(target, r.tag or None)
    except BaseExceptionGroup as eg:
        raise _first(eg) from None
    return PushImageResult(target, results)


def manifest_json(doc: dict) -> bytes:
    """Canonical-enough JSON for a manifest built in tests or tools."""
    return json.dumps(doc, separators=(",", ":")).encode()
