"""The CRI's view of namespace ``k8s.io``'s images is kept per database write generation:
calls between two writes share one listing, and a write makes the next call list again, so
no ImageStatus/ListImages answers older than a write the caller saw."""

from __future__ import annotations

import asyncio
import hashlib
import json

from pycontainerd.cri.config import CRIConfig
from pycontainerd.cri.images import Images
from pycontainerd.descriptor import Descriptor
from pycontainerd.records.images import Image

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Store:
    """What :class:`Images` reads from the daemon: image records, blobs, the generation."""

    def __init__(self) -> None:
        self.generation = 0
        self.blobs: dict[str, bytes] = {}
        self.records: list[Image] = []
        self.lists = 0

    def add(self, name: str, layer_diff: str) -> str:
        config = json.dumps({"rootfs": {"type": "layers", "diff_ids": [layer_diff]},
                             "config": {"User": "1000"}}).encode()
        manifest = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST,
                               "config": {"mediaType": CONFIG, "digest": _digest(config), "size": len(config)},
                               "layers": []}).encode()
        for blob in (config, manifest):
            self.blobs[_digest(blob)] = blob
        self.records.append(Image(name=name, target=Descriptor(MANIFEST, _digest(manifest), len(manifest))))
        self.generation += 1
        return _digest(config)

    def remove(self, name: str) -> None:
        self.records = [r for r in self.records if r.name != name]
        self.generation += 1

    async def list_images(self, *filters: str) -> list[Image]:
        self.lists += 1
        return sorted(self.records, key=lambda r: r.name)

    async def read_blob(self, digest: str) -> bytes:
        return self.blobs[digest]


def test_calls_between_writes_share_one_listing_and_a_write_is_seen_at_once() -> None:
    store = Store()
    images = Images(store, CRIConfig())
    busybox = store.add("docker.io/library/busybox:1.36", "sha256:" + "a" * 64)

    async def scenario() -> None:
        resolved, names = await images.local_image("busybox:1.36")
        assert (resolved.id, names) == (busybox, ["docker.io/library/busybox:1.36"])
        assert await images.local_image(busybox[len("sha256:"):len("sha256:") + 12]) is not None  # id prefix
        assert set(await images.cri_images()) == {busybox}
        assert store.lists == 1                                   # one listing for the three calls

        store.add(f"docker.io/library/busybox@{store.records[0].target.digest}", "sha256:" + "a" * 64)
        alpine = store.add("docker.io/library/alpine:3", "sha256:" + "b" * 64)
        _, names = await images.local_image(busybox)
        assert names == ["docker.io/library/busybox:1.36",
                         f"docker.io/library/busybox@{store.records[0].target.digest}"]
        assert (await images.local_image("alpine:3"))[0].id == alpine
        assert store.lists == 2

        store.remove("docker.io/library/alpine:3")
        assert await images.local_image("alpine:3") is None
        assert await images.local_image(alpine) is None
        assert set(await images.cri_images()) == {busybox}
        assert store.lists == 3

    asyncio.run(scenario())
