"""The metadata key schema (pycontainerd/metadata/keys.py): every builder's key parses back
to the object it names, and keys outside the schema parse to None."""

from __future__ import annotations

import pytest

from pycontainerd.errdefs import InvalidArgument
from pycontainerd.metadata import keys

D = "sha256:" + "a" * 64


@pytest.mark.parametrize(("raw", "kind", "ident", "lease"), [
    (keys.image_key("ns", "docker.io/library/busybox:latest"), "image", "docker.io/library/busybox:latest", ""),
    (keys.container_key("ns", "web"), "containers", "web", ""),
    (keys.key("ns", "sandboxes", "pod"), "sandboxes", "pod", ""),
    (keys.blob_key("ns", D), "content", D, ""),
    (keys.ingest_key("ns", "ref-1"), "ingests", "ref-1", ""),
    (keys.snapshot_key("ns", "overlayfs", "k/1"), "snapshots", ("overlayfs", "k/1"), ""),
    (keys.lease_key("ns", "l1"), "leases", "l1", ""),
    (keys.lease_resource_key("ns", "l1", "content", D), "content", D, "l1"),
    (keys.lease_resource_key("ns", "l1", "ingests", "ref-1"), "ingests", "ref-1", "l1"),
    (keys.lease_resource_key("ns", "l1", "snapshots", "native", "k"), "snapshots", ("native", "k"), "l1"),
])
def test_every_builder_parses_back(raw: bytes, kind: str, ident, lease: str) -> None:
    parsed = keys.parse(raw)
    assert parsed == keys.ObjectKey(kind, "ns", ident, lease)
    assert parsed.node == (kind, "ns", ident)
    assert raw.startswith(keys.key_prefix("ns"))


@pytest.mark.parametrize("raw", [b"ns", keys.key("ns", "image"), keys.key("ns", "content", "blob"),
                                 keys.key("ns", "content", "other", "x"), keys.key("ns", "leases", "l", "x"),
                                 keys.key("ns", "unknown", "x")])
def test_keys_outside_the_schema_parse_to_none(raw: bytes) -> None:
    assert keys.parse(raw) is None


def test_a_nul_in_a_part_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="NUL"):
        keys.image_key("ns", "a\0b")
