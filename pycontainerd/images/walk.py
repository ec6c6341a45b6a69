"""Walking an image's graph of descriptors: the children of a manifest or index, the
entries of an index a platform matcher selects, the manifest of an image for a platform
(containerd's ``images.Children``, ``FilterPlatforms`` + ``LimitManifests`` and
``images.Manifest``).

Shared by pull and push, archives, the CRI and the client's image helpers. Nothing here
logs or speaks HTTP: ``pyctr images ls`` walks images with it and must not load the
registry stack (:mod:`pycontainerd.remotes.fetch`) for that.
"""

from __future__ import annotations

from typing import Protocol

from .. import imagespec
from ..descriptor import Descriptor
from ..errdefs import InvalidArgument, NotFound
from ..remotes import mediatypes, platforms


class ContentReader(Protocol):
    async def read_all(self, digest: str) -> bytes: ...


class HasContent(Protocol):
    """What :func:`manifest_for` reads blobs through: a client's (or the CRI's) content store."""

    @property
    def content(self) -> ContentReader: ...


def children(desc: Descriptor, doc: dict) -> list[Descriptor]:
    """Config then layers of a manifest; the entries of an index."""
    try:
        if mediatypes.is_manifest(desc.media_type):
            if "config" not in doc:
                raise InvalidArgument(f"manifest {desc.digest} has no config")
            return [Descriptor.from_dict(doc["config"]), *(Descriptor.from_dict(d) for d in _array(doc, "layers"))]
        if mediatypes.is_index(desc.media_type):
            return [Descriptor.from_dict(d) for d in _array(doc, "manifests")]
    except InvalidArgument as exc:
        raise InvalidArgument(f"{desc.media_type} {desc.digest}: {exc.context}") from exc
    return []


def _array(doc: dict, key: str) -> list:
    value = doc.get(key) or []
    if not isinstance(value, list):
        raise InvalidArgument(f"{key} must be an array")
    return value


def select_platforms(entries: list[Descriptor], matcher: platforms.MatchComparer, limit: int) -> list[Descriptor]:
    """``FilterPlatforms`` then ``LimitManifests``: matching entries, best first, at most ``limit``
    (0 = all)."""
    kept = [d for d in entries if d.platform is None or matcher.match(d.platform)]
    # stable insertion sort with containerd's comparison (entries without platform go last)
    ordered: list[Descriptor] = []
    for d in kept:
        i = len(ordered)
        while i > 0 and _less(d, ordered[i - 1], matcher):
            i -= 1
        ordered.insert(i, d)
    if limit > 0:
        if not ordered:
            raise NotFound("no match for platform in manifest")
        ordered = ordered[:limit]
    return ordered


def _less(a: Descriptor, b: Descriptor, matcher: platforms.MatchComparer) -> bool:
    if a.platform is None:
        return False
    if b.platform is None:
        return True
    return matcher.less(a.platform, b.platform)


async def manifest_for(client: HasContent, target: Descriptor, platform: str | None = None,
                       name: str = "") -> tuple[Descriptor, dict]:
    """The manifest of ``target`` for ``platform`` (host default), following an index if
    needed: its descriptor and document. Raises :class:`NotFound` when no entry matches;
    errors name the image ``name`` when given."""
    desc = target
    what = f"image {name}: " if name else ""
    for _ in range(4):  # index → (nested index) → manifest
        doc = imagespec.parse_json(await client.content.read_all(desc.digest), f"manifest {desc.digest}")
        if not mediatypes.is_index(desc.media_type):
            return desc, doc
        matcher = platforms.only(platform) if platform else platforms.default()
        try:
            desc = select_platforms(imagespec.index_children(doc), matcher, 1)[0]
        except NotFound as exc:
            raise NotFound(f"{what}no match for platform {platform or platforms.default_string()} "
                           f"in manifest {desc.digest}") from exc
    raise InvalidArgument(f"image {name or target.digest}: indexes nested too deep")
