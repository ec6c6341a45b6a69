"""The CRI's view of the images of namespace ``k8s.io``: each image resolved for this
host's platform (manifest, config, chain id, size; cached by target digest), found by id,
reference or id prefix as containerd's ``localResolve`` does, pulled through
``registry.config_path`` and recorded under its reference, repo digest and id."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .. import imagespec
from ..api.cri.runtime.v1 import api_pb2 as cri
from ..errdefs import InvalidArgument, NotFound, quote
from ..images.walk import select_platforms
from ..records.images import Image
from ..remotes import mediatypes, platforms
from ..remotes.reference import parse_normalized
from .config import CRIConfig
from .daemon import Daemon, image_record


@dataclass(frozen=True)
class ResolvedImage:
    """An image record resolved for this host's platform."""

    record: Image
    config_digest: str
    config: dict[str, Any]
    chain_id: str
    size: int
    manifest_digest: str

    @property
    def id(self) -> str:
        return self.config_digest


@dataclass(frozen=True)
class _View:
    """The runnable images at one database generation: by image id, and by each name."""

    by_id: dict[str, tuple[ResolvedImage, list[str]]]
    by_name: dict[str, tuple[ResolvedImage, list[str]]]


class Images:
    """The images CRI calls see (see the module doc)."""

    def __init__(self, daemon: Daemon, config: CRIConfig) -> None:
        self.daemon = daemon
        self.config = config
        self.pull_locks: dict[str, asyncio.Lock] = {}           # one pull per reference at a time
        self._resolved: dict[str, tuple[str, dict[str, Any], str, int, str]] = {}
        self._view: tuple[int, _View] | None = None     # (database generation, the images then)

    async def resolve(self, record: Image) -> ResolvedImage:
        """Manifest, config, chain id and size of ``record`` for this host's platform
        (cached by target digest). Raises :class:`NotFound` when content is missing or no
        manifest matches the platform."""
        target = record.target
        hit = self._resolved.get(target.digest)
        if hit is None:
            size = target.size
            desc = target
            doc: dict[str, Any] = {}
            for _ in range(4):
                doc = imagespec.parse_json(await self.daemon.read_blob(desc.digest), f"manifest {desc.digest}")
                if not mediatypes.is_index(desc.media_type) and "manifests" not in doc:
                    break
                child = select_platforms(imagespec.index_children(doc), platforms.default(), 1)[0]
                desc = child
                size += child.size
            else:
                raise InvalidArgument(f"image {record.name}: indexes nested too deep")
            config_desc, layers = imagespec.manifest_children(doc)
            config = imagespec.parse_json(await self.daemon.read_blob(config_desc.digest),
                                          f"config {config_desc.digest}")
            chain = imagespec.chain_ids(imagespec.diff_ids(config))
            size += config_desc.size + sum(layer.size for layer in layers)
            hit = (config_desc.digest, config, chain[-1] if chain else "", size, desc.digest)
            self._resolved[target.digest] = hit
        return ResolvedImage(record, hit[0], hit[1], hit[2], hit[3], hit[4])

    async def cri_images(self) -> dict[str, tuple[ResolvedImage, list[str]]]:
        """Every image of namespace ``k8s.io`` that this host can run, by image id
        (``sha256:<config digest>``) with all the names that point at it. Callers must not
        change what they get: it is kept until the next write to the database."""
        return (await self._current()).by_id

    async def _current(self) -> _View:
        """The images as of the database's write generation, read before the records (as
        :class:`~pycontainerd.memo.Latest` does): a write that bumps it after its commit
        makes the next call read again, so no call sees images older than a write it saw."""
        version = self.daemon.generation
        kept = self._view
        if kept is not None and kept[0] == version:
            return kept[1]
        by_id: dict[str, tuple[ResolvedImage, list[str]]] = {}
        for record in await self.daemon.list_images():
            try:
                resolved = await self.resolve(record)
            except (NotFound, InvalidArgument):
                continue
            entry = by_id.get(resolved.id)
            if entry is None:
                by_id[resolved.id] = (resolved, [record.name])
            else:
                entry[1].append(record.name)
        view = _View(by_id, {name: entry for entry in by_id.values() for name in entry[1]})
        kept = self._view
        if kept is None or kept[0] <= version:
            self._view = (version, view)
        return view

    async def local_image(self, ref_or_id: str) -> tuple[ResolvedImage, list[str]] | None:
        """The image ``ref_or_id`` names: an image id, a reference (normalised), or a unique
        prefix of an id (containerd's ``localResolve``); None when there is none."""
        if not ref_or_id:
            raise InvalidArgument("image name is required")
        view = await self._current()
        images = view.by_id
        if ref_or_id in images:
            return images[ref_or_id]
        try:
            name = str(parse_normalized(ref_or_id))
        except InvalidArgument:
            name = ""
        if name and name in view.by_name:
            return view.by_name[name]
        prefix = ref_or_id if ref_or_id.startswith("sha256:") else f"sha256:{ref_or_id}"
        hits = [v for k, v in images.items() if k.startswith(prefix)]
        if len(hits) == 1 and len(ref_or_id.removeprefix("sha256:")) >= 1:
            return hits[0]
        return None

    @staticmethod
    def split_references(names: Sequence[str]) -> tuple[list[str], list[str]]:
        """``(repo tags, repo digests)`` among an image's names (ids are neither)."""
        tags, digests = [], []
        for n in names:
            if n.startswith("sha256:"):
                continue
            try:
                ref = parse_normalized(n)
            except InvalidArgument:
                continue
            (digests if ref.digest else tags).append(str(ref))
        return sorted(set(tags)), sorted(set(digests))

    async def pull(self, ref: str, auth: cri.AuthConfig | None = None) -> ResolvedImage:
        """Pull ``ref`` as the CRI does and record it under its reference, its repo digest
        and its id, labelled ``io.cri-containerd.image=managed``."""
        import httpx

        from ..remotes.resolver import Resolver
        from .registry import parse_auth, pull_settings

        normalized = parse_normalized(ref)
        name = str(normalized)
        settings = pull_settings(self.config.registry.config_path, name)
        lock = self.pull_locks.setdefault(name, asyncio.Lock())
        async with lock:
            verify = await asyncio.to_thread(settings.verify)  # reads CA files (the default bundle once)
            client = httpx.AsyncClient(verify=verify, timeout=httpx.Timeout(60.0, connect=10.0),
                                       follow_redirects=False)
            try:
                resolver = Resolver(client=client, hosts=settings.hosts_func(),
                                    credentials=lambda host: parse_auth(auth, host))
                record = await self.daemon.pull(name, resolver)
            finally:
                await client.aclose()
            resolved = await self.resolve(record)
            repo_digest = f"{normalized.name}@{record.target.digest}"
            await self.daemon.put_images([image_record(n, record.target)
                                          for n in dict.fromkeys([name, repo_digest, resolved.id])])
        return resolved

    async def ensure_image(self, ref: str) -> tuple[ResolvedImage, list[str]]:
        """The local image ``ref``, pulled first when it is not here (the sandbox image)."""
        found = await self.local_image(ref)
        if found is not None:
            return found
        await self.pull(ref)
        found = await self.local_image(ref)
        if found is None:
            raise NotFound(f"image {quote(ref)} not found after pull")
        return found

    async def ensure_unpacked(self, image: ResolvedImage) -> None:
        if image.chain_id and not await self.daemon.snapshot_exists(image.chain_id):
            await self.daemon.unpack(image.record.name)
