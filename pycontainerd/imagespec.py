"""OCI image-spec arithmetic shared by pull, unpack, import and CRI: chain IDs, children of
a manifest or index, and the labels that tie them together for garbage collection.

* chainID (image-spec "config.md#layer-chainid"): ``ChainID(L0) = DiffID(L0)``,
  ``ChainID(L0..n) = sha256(ChainID(L0..n-1) + " " + DiffID(Ln))``.
* children labels (containerd's ``images.SetChildrenLabels``): an index labels each
  manifest ``containerd.io/gc.ref.content.m.<i>``; a manifest labels its config
  ``…content.config`` and its layers ``…content.l.<i>``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from .descriptor import Descriptor
from .errdefs import InvalidArgument

MAX_MANIFEST_SIZE = 4 << 20
"""Largest manifest, index or config accepted, in bytes (containerd's limit is the same)."""

LABEL_UNCOMPRESSED = "containerd.io/uncompressed"
LABEL_SNAPSHOT_REF = "containerd.io/snapshot.ref"


def chain_ids(diff_ids: Sequence[str]) -> list[str]:
    """The chainID of every prefix of ``diff_ids`` (same length)."""
    out: list[str] = []
    for diff_id in diff_ids:
        if not out:
            out.append(diff_id)
        else:
            out.append("sha256:" + hashlib.sha256(f"{out[-1]} {diff_id}".encode()).hexdigest())
    return out


def parse_json(data: bytes, what: str) -> dict:
    """Parse a manifest/index/config. Raises :class:`InvalidArgument` when too big or not a
    JSON object."""
    if len(data) > MAX_MANIFEST_SIZE:
        raise InvalidArgument(f"{what} is {len(data)} bytes, larger than the {MAX_MANIFEST_SIZE} byte limit")
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested thousands deep
        raise InvalidArgument(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise InvalidArgument(f"{what} is not a JSON object")
    return doc


def manifest_children(doc: dict) -> tuple[Descriptor, list[Descriptor]]:
    """``(config, layers)`` of a manifest. Raises :class:`InvalidArgument`."""
    try:
        config = Descriptor.from_json(doc["config"])
        layers = [Descriptor.from_json(x) for x in doc.get("layers") or []]
    except (KeyError, TypeError) as exc:
        raise InvalidArgument(f"malformed manifest: missing {exc}") from exc
    return config, layers


def index_children(doc: dict) -> list[Descriptor]:
    entries = doc.get("manifests")
    if not isinstance(entries, list):
        raise InvalidArgument("malformed index: no manifests list")
    return [Descriptor.from_json(x) for x in entries]


def children_labels(media_type_is_index: bool, doc: dict) -> dict[str, str]:
    """The gc reference labels a manifest or index blob carries for its children."""
    if media_type_is_index:
        return {f"containerd.io/gc.ref.content.m.{i}": d.digest for i, d in enumerate(index_children(doc))}
    config, layers = manifest_children(doc)
    labels = {"containerd.io/gc.ref.content.config": config.digest}
    labels.update({f"containerd.io/gc.ref.content.l.{i}": d.digest for i, d in enumerate(layers)})
    return labels


def diff_ids(config_doc: dict) -> list[str]:
    """``rootfs.diff_ids`` of an image config. Raises :class:`InvalidArgument`."""
    rootfs = config_doc.get("rootfs")
    if not isinstance(rootfs, dict) or not isinstance(rootfs.get("diff_ids"), list):
        raise InvalidArgument("image config has no rootfs.diff_ids")
    return [str(d) for d in rootfs["diff_ids"]]
