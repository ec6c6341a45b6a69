"""Push an image from the daemon's content store to a registry (containerd's
``client.Push``): blobs are read through the Content service (``Content.Read``, streamed)
and uploaded by :func:`pycontainerd.remotes.push.push_image` — layers and config first,
then manifests, the index last, under the reference's tag.

``progress(key, offset, total)`` is called as bytes go out (``key`` as in a pull:
``layer-sha256:…``, ``manifest-sha256:…``, ``config-sha256:…``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from ..descriptor import Descriptor
from ..remotes import mediatypes, platforms
from ..remotes.push import PushImageResult, push_image
from ..remotes.resolver import Resolver

Progress = Callable[[str, int, int], None]


async def push(client, ref: str, target: Descriptor, *, platform: str | None = None, all_platforms: bool = True,
               resolver: Resolver | None = None, plain_http: bool | list[str] = False,
               progress: Progress | None = None, credentials=None) -> PushImageResult:
    """Push the image rooted at ``target`` to ``ref`` (see module doc).

    An index's entries are narrowed to ``platform`` unless ``all_platforms`` (the default,
    as ``ctr images push``: then every entry must be in the content store). Raises the
    remotes' errors (``Unauthorized``, ``NotFound``, …) and ``NotFound`` for a blob the
    content store lacks.
    """
    own = resolver is None
    resolver = resolver or Resolver(plain_http=plain_http, credentials=credentials)
    matcher = None
    if not all_platforms or platform:
        matcher = platforms.only(platform) if platform else platforms.default()

    def read_blob(desc: Descriptor) -> AsyncIterator[bytes]:
        key = mediatypes.ref_key(desc)

        async def stream() -> AsyncIterator[bytes]:
            done = 0
            async for chunk in client.content.read(desc.digest):
                done += len(chunk)
                if progress is not None:
                    progress(key, done, desc.size)
                yield chunk

        return stream()

    try:
        return await push_image(resolver, ref, target, read_blob, platform_matcher=matcher)
    finally:
        if own:
            await resolver.aclose()
