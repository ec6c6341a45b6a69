"""Images as the client sees them (containerd's ``image.go`` and ``images`` helpers).

An :class:`AsyncImage` is an image record (``name``, ``target`` descriptor, ``labels``,
``created_at``/``updated_at`` in ns) bound to the client, so it can read what it points
to from the content store::

    image = await client.get_image("docker.io/library/busybox:latest")
    cfg = await image.config()          # the image config JSON (dict)
    await image.size()                  # bytes: manifest + config + layers, this platform
    await image.platforms()             # ["linux/amd64", ...]
    if not await image.is_unpacked():
        await image.unpack()

``platform`` arguments take a specifier (``"linux/arm64/v8"``) and default to this host's
platform (with the ones it can also run, as containerd's ``platforms.Default``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import imagespec
from ..descriptor import Descriptor
from ..errdefs import InvalidArgument, NotFound
from ..images.walk import children, manifest_for, select_platforms
from ..records.images import Image
from ..remotes import mediatypes, platforms
from .connection import DEFAULT_SNAPSHOTTER

if TYPE_CHECKING:
    from ._protocols import ClientCore


def matcher_for(platform: str | None, all_platforms: bool = False) -> platforms.MatchComparer:
    if all_platforms:
        return platforms.ALL
    return platforms.only(platform) if platform else platforms.default()


@dataclass(frozen=True)
class CheckResult:
    """What ``images check`` reports for one platform of an image: ``required`` blobs (every
    descriptor reachable for the platform), those ``present`` in the content store, the
    ``missing`` ones, their sizes in bytes, and whether the layers are unpacked."""

    required: list[Descriptor]
    present: list[Descriptor]
    missing: list[Descriptor]
    unpacked: bool

    @property
    def complete(self) -> bool:
        return not self.missing

    @property
    def present_size(self) -> int:
        return sum(d.size for d in self.present)

    @property
    def required_size(self) -> int:
        return sum(d.size for d in self.required)


@dataclass(frozen=True)
class AsyncImage:
    """An image record bound to its client (see module doc)."""

    name: str
    target: Descriptor
    labels: Mapping[str, str] = field(default_factory=dict)
    created_at: int = 0
    updated_at: int = 0
    client: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, client: ClientCore, record: Image) -> AsyncImage:
        return cls(record.name, record.target, dict(record.labels), record.created_at, record.updated_at, client)

    @property
    def record(self) -> Image:
        """The plain image record (as the Images service stores it)."""
        return Image(self.name, self.target, dict(self.labels), self.created_at, self.updated_at)

    async def _read_json(self, desc: Descriptor, what: str) -> dict:
        return imagespec.parse_json(await self.client.content.read_all(desc.digest), f"{what} {desc.digest}")

    async def manifest(self, platform: str | None = None) -> dict:
        """The manifest for ``platform`` (following an index). Raises ``NotFound`` when no
        entry matches or a blob is missing."""
        return (await self._manifest(platform))[1]

    async def _manifest(self, platform: str | None) -> tuple[Descriptor, dict]:
        return await manifest_for(self.client, self.target, platform, self.name)

    async def config_descriptor(self, platform: str | None = None) -> Descriptor:
        config, _ = imagespec.manifest_children(await self.manifest(platform))
        return config

    async def config(self, platform: str | None = None) -> dict:
        """The image config JSON (``architecture``, ``os``, ``config``, ``rootfs``, …)."""
        return await self._read_json(await self.config_descriptor(platform), "config")

    async def rootfs(self, platform: str | None = None) -> list[str]:
        """The layers' diffIDs (uncompressed digests), bottom first."""
        return imagespec.diff_ids(await self.config(platform))

    async def chain_id(self, platform: str | None = None) -> str:
        """The chainID of the top layer: the name of the committed snapshot an unpack makes."""
        ids = imagespec.chain_ids(await self.rootfs(platform))
        if not ids:
            raise InvalidArgument(f"image {self.name} has no layers")
        return ids[-1]

    async def platforms(self) -> list[str]:
        """Every platform the image offers (from the index, or the config of a single
        manifest), as ``os/arch[/variant]``."""
        out: list[str] = []
        desc = self.target
        if mediatypes.is_index(desc.media_type):
            doc = await self._read_json(desc, "index")
            for child in imagespec.index_children(doc):
                if child.platform is not None:
                    text = platforms.format(platforms.normalize(child.platform))
                    if text not in out:
                        out.append(text)
            return out
        try:
            cfg = await self.config()
        except NotFound:
            return out
        from ..descriptor import Platform

        p = Platform(cfg.get("os", ""), cfg.get("architecture", ""), cfg.get("variant", "") or "")
        if p.os:
            out.append(platforms.format(platforms.normalize(p)))
        return out

    async def _walk(self, matcher: platforms.MatchComparer, limit: int) -> tuple[list[Descriptor], list[Descriptor]]:
        """(every descriptor reachable for the platform, those missing from the store)."""
        seen: list[Descriptor] = []
        missing: list[Descriptor] = []
        todo = [self.target]
        while todo:
            desc = todo.pop(0)
            seen.append(desc)
            if mediatypes.is_manifest(desc.media_type) or mediatypes.is_index(desc.media_type):
                try:
                    doc = await self._read_json(desc, "manifest")
                except NotFound:
                    missing.append(desc)
                    continue
                subs = children(desc, doc)
                if mediatypes.is_index(desc.media_type):
                    subs = select_platforms(subs, matcher, limit)
                todo.extend(subs)
            else:
                try:
                    await self.client.content.info(desc.digest)
                except NotFound:
                    missing.append(desc)
        return seen, missing

    async def size(self, platform: str | None = None) -> int:
        """Bytes of the target, the manifest, config and layers for ``platform`` (what
        ``ctr images ls`` shows)."""
        seen, _ = await self._walk(matcher_for(platform), 1)
        return sum(d.size for d in seen)

    async def check(self, platform: str | None = None, snapshotter: str = DEFAULT_SNAPSHOTTER) -> CheckResult:
        """Which blobs the image needs for ``platform`` and which are there."""
        seen, missing = await self._walk(matcher_for(platform), 1)
        present = [d for d in seen if d not in missing]
        unpacked = False
        if not missing:
            unpacked = await self.is_unpacked(snapshotter, platform)
        return CheckResult(seen, present, missing, unpacked)

    async def is_unpacked(self, snapshotter: str = DEFAULT_SNAPSHOTTER, platform: str | None = None) -> bool:
        """Whether the top layer's snapshot exists in ``snapshotter``."""
        try:
            chain = await self.chain_id(platform)
        except (NotFound, InvalidArgument):
            return False
        try:
            await self.client.snapshotter(snapshotter).stat(chain)
            return True
        except NotFound:
            return False

    async def unpack(self, snapshotter: str = DEFAULT_SNAPSHOTTER, platform: str | None = None) -> str:
        """Unpack the layers into ``snapshotter`` (layers already there are reused); returns
        the top chainID."""
        from ..images.pull import unpack_image

        result = await unpack_image(self.client, self.record, platform=platform, snapshotter=snapshotter)
        return result.chain_id
