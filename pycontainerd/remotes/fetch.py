"""Fetch a whole image: index → manifest → config and layers (containerd's pull handlers:
``FetchHandler`` + ``ChildrenHandler`` + ``FilterPlatforms`` + ``LimitManifests``, run by
``images.Dispatch``).

:func:`fetch_image` resolves the reference, then handles descriptors top-down: each one is
handed to the injected ``write_blob(desc, stream)`` — which must consume the stream (a
verified :class:`~.fetcher.BlobStream`; raise :class:`~pycontainerd.errdefs.AlreadyExists`
to say "already have it") — and then its children are dispatched:

* an index/manifest list: the entries whose platform matches (entries without a platform
  always do), stably sorted by the matcher's preference, and only the best one unless the
  matcher is :data:`~.platforms.ALL`; none left is ``NotFound`` ("no match for platform in
  manifest");
* a manifest: its config, then its layers, in manifest order.

Children of one parent start in order and run concurrently, at most
``resolver.max_concurrent_downloads`` at a time (the limit is taken before a child starts
and released when its own blob is written, before its children are dispatched, exactly
like containerd's ``Dispatch``). A manifest or index is read whole (at most 4 MiB), checked
against its descriptor and its declared media type, then streamed to ``write_blob`` from
memory. Schema 1 manifests are not supported (``NotImplementedYet``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, NamedTuple

from pycontainerd.descriptor import Descriptor
from pycontainerd.errdefs import AlreadyExists, InvalidArgument, NotImplementedYet
from pycontainerd.images.walk import children, select_platforms
from pycontainerd.log import get_logger
from pycontainerd.remotes import mediatypes, platforms

if TYPE_CHECKING:  # the HTTP stack (httpx) loads with the resolver that makes a fetcher, not with this
    from pycontainerd.remotes.fetcher import Fetcher

log = get_logger("remotes")

WriteBlob = Callable[[Descriptor, AsyncIterator[bytes]], Awaitable[object]]


class FetchResult(NamedTuple):
    target: Descriptor
    """What the reference resolved to (the root manifest or index)."""
    written: list[Descriptor]
    """Every descriptor handed to ``write_blob``, in dispatch order (root, then children of
    each parent in manifest order)."""


async def _bytes_stream(data: bytes) -> AsyncIterator[bytes]:
    yield data


def validate_media_type(data: bytes, media_type: str) -> dict:
    """Parse a manifest or index and check it is what its descriptor says (containerd's
    ``validateMediaType``). Raises InvalidArgument for bad JSON or a mismatch, and
    NotImplementedYet for schema 1."""
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested thousands deep
        raise InvalidArgument(f"{media_type}: manifest is not valid JSON") from exc
    if not isinstance(doc, dict):
        raise InvalidArgument(f"{media_type}: manifest is not a JSON object")
    # presence, not truthiness: containerd tests the raw JSON's length (``{}`` counts)
    if "fsLayers" in doc:
        raise NotImplementedYet("media-type: schema 1 not supported")
    declared = doc.get("mediaType", "")
    if mediatypes.is_manifest(media_type):
        if "manifests" in doc or mediatypes.is_index(declared):
            raise InvalidArgument(f"media-type: expected manifest but found index ({media_type})")
    elif mediatypes.is_index(media_type):
        if "config" in doc or "layers" in doc or mediatypes.is_manifest(declared):
            raise InvalidArgument(f"media-type: expected index but found manifest ({media_type})")
    return doc


async def fetch_image(
    resolver,
    ref: str,
    platform_matcher: platforms.MatchComparer | None,
    write_blob: WriteBlob,
    *,
    limit: int | None = None,
    have: Callable[[Descriptor], Awaitable[bool]] | None = None,
    resume_at: Callable[[Descriptor], Awaitable[int]] | None = None,
) -> FetchResult:
    """Fetch ``ref`` for the platforms ``platform_matcher`` accepts (None: this host's,
    :func:`~.platforms.default`); see module doc. ``limit``: how many manifests to keep
    from an index (default 1, or all for :data:`~.platforms.ALL`). ``have(desc)``: when it
    returns True for a blob that is not a manifest or index, the blob is not downloaded
    (the content store has it already). ``resume_at(desc)``: how many bytes of the blob an
    earlier, interrupted ingest already holds; the download then starts there (HTTP Range)
    and the stream handed to ``write_blob`` has that ``offset``.

    Raises what the resolver, fetcher and ``write_blob`` raise; on the first error the
    other downloads in flight are cancelled.
    """
    matcher = platform_matcher or platforms.default()
    if limit is None:
        limit = 0 if matcher is platforms.ALL else 1
    name, target = await resolver.resolve(ref)
    fetcher: Fetcher = resolver.fetcher(name)
    semaphore = asyncio.Semaphore(resolver.max_concurrent_downloads)
    started: list[tuple[Descriptor, list[bool]]] = []  # in dispatch order; flag: handed over

    async def handle(desc: Descriptor) -> list[Descriptor]:
        handed = [False]
        started.append((desc, handed))
        log.debug("fetch", digest=desc.digest, mediatype=desc.media_type, size=desc.size)
        if desc.media_type == mediatypes.DOCKER_SCHEMA1_MANIFEST:
            raise NotImplementedYet(f"{name}: docker schema 1 manifests are not supported")
        if mediatypes.is_manifest(desc.media_type) or mediatypes.is_index(desc.media_type):
            data = await fetcher.fetch_bytes(desc)
            doc = validate_media_type(data, desc.media_type)
            handed[0] = True
            await _write(desc, _bytes_stream(data))
            subs = children(desc, doc)
            if mediatypes.is_index(desc.media_type):
                subs = select_platforms(subs, matcher, limit)
            return subs
        if have is not None and await have(desc):
            log.debug("content already present", digest=desc.digest)
            return []
        offset = await resume_at(desc) if resume_at is not None else 0
        stream = await fetcher.fetch(desc, offset if 0 < offset < desc.size else 0)
        handed[0] = True
        try:
            await _write(desc, stream)
        finally:
            await stream.aclose()
        if not (mediatypes.is_layer(desc.media_type) or mediatypes.is_known_config(desc.media_type)):
            log.debug("encountered unknown type; children may not be fetched", mediatype=desc.media_type)
        return []

    async def _write(desc: Descriptor, stream: AsyncIterator[bytes]) -> None:
        try:
            await write_blob(desc, stream)
        except AlreadyExists:
            log.debug("content already present", digest=desc.digest)

    async def dispatch(descs: list[Descriptor]) -> None:
        async with asyncio.TaskGroup() as tg:
            for d in descs:
                await semaphore.acquire()
                tg.create_task(run(d))

    async def run(desc: Descriptor) -> None:
        try:
            subs = await handle(desc)
        finally:
            semaphore.release()
        if subs:
            await dispatch(subs)

    try:
        await dispatch([target])
    except BaseExceptionGroup as eg:
        raise _first(eg) from None
    return FetchResult(target, [d for d, handed in started if handed[0]])


def _first(eg: BaseExceptionGroup) -> BaseException:
    """The first real error of a task group (containerd's errgroup returns the first)."""
    exc: BaseException = eg
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc
