"""Media types of docker schema2 and OCI images, and the predicates containerd uses on them
(``images/mediatypes.go``): which types are manifests, indexes, configs and layers, the
compression of a layer, and whether a layer may be distributed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pycontainerd.descriptor import Descriptor

# docker schema 2
DOCKER_SCHEMA2_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_SCHEMA2_LAYER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar"
DOCKER_SCHEMA2_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_SCHEMA2_LAYER_FOREIGN_GZIP = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
DOCKER_SCHEMA2_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_SCHEMA2_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_SCHEMA2_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA1_MANIFEST = "application/vnd.docker.distribution.manifest.v1+prettyjws"

# OCI image-spec v1
OCI_DESCRIPTOR = "application/vnd.oci.descriptor.v1+json"
OCI_LAYOUT_HEADER = "application/vnd.oci.layout.header.v1+json"
OCI_IMAGE_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_IMAGE_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_NONDISTRIBUTABLE = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_NONDISTRIBUTABLE_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYER_NONDISTRIBUTABLE_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"

ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"

# containerd's own (checkpoints)
CONTAINERD_CHECKPOINT = "application/vnd.containerd.container.criu.checkpoint.criu.tar"
CONTAINERD_CHECKPOINT_CONFIG = "application/vnd.containerd.container.checkpoint.config.v1+proto"

MANIFEST_TYPES = (DOCKER_SCHEMA2_MANIFEST, OCI_IMAGE_MANIFEST)
INDEX_TYPES = (DOCKER_SCHEMA2_MANIFEST_LIST, OCI_IMAGE_INDEX)
CONFIG_TYPES = (DOCKER_SCHEMA2_CONFIG, OCI_IMAGE_CONFIG)

RESOLVE_ACCEPT = ", ".join(
    [DOCKER_SCHEMA2_MANIFEST, DOCKER_SCHEMA2_MANIFEST_LIST, OCI_IMAGE_MANIFEST, OCI_IMAGE_INDEX, "*/*"]
)
"""The ``Accept`` header containerd sends when resolving a reference."""


def parse(media_type: str) -> tuple[str, list[str]]:
    """Split ``base+ext1+ext2`` into the base and its sorted suffixes."""
    if not media_type:
        return "", []
    base, *ext = media_type.split("+")
    return base, sorted(ext)


def is_manifest(media_type: str) -> bool:
    """Docker schema2 or OCI image manifest (schema1 is not a manifest here)."""
    return media_type in MANIFEST_TYPES


def is_index(media_type: str) -> bool:
    """OCI image index or docker manifest list."""
    return media_type in INDEX_TYPES


def is_config(media_type: str) -> bool:
    return media_type in CONFIG_TYPES


def is_known_config(media_type: str) -> bool:
    """An image config or one of containerd's checkpoint configs (childless, not a layer)."""
    return media_type in (*CONFIG_TYPES, CONTAINERD_CHECKPOINT, CONTAINERD_CHECKPOINT_CONFIG)


def is_layer(media_type: str) -> bool:
    """Any OCI layer type (``application/vnd.oci.image.layer.*``) or a docker rootfs diff."""
    if media_type.startswith("application/vnd.oci.image.layer."):
        return True
    base, _ = parse(media_type)
    return base in (
        DOCKER_SCHEMA2_LAYER,
        DOCKER_SCHEMA2_LAYER_GZIP,
        DOCKER_SCHEMA2_LAYER_FOREIGN,
        DOCKER_SCHEMA2_LAYER_FOREIGN_GZIP,
    )


def is_non_distributable(media_type: str) -> bool:
    """Foreign (docker) or non-distributable (OCI) layers, which registries may refuse."""
    return media_type.startswith("application/vnd.oci.image.layer.nondistributable.") or media_type.startswith(
        "application/vnd.docker.image.rootfs.foreign."
    )


def is_docker(media_type: str) -> bool:
    return media_type.startswith("application/vnd.docker.")


def diff_compression(media_type: str) -> str | None:
    """The compression of a layer media type: ``"gzip"``, ``"zstd"``, ``""`` (plain tar),
    ``"unknown"`` (docker's uncompressed type, which is often gzip in practice: sniff it),
    or None when ``media_type`` is not a layer. A wrapped type (``+encrypted``) gives ``""``."""
    base, ext = parse(media_type)
    if base in (DOCKER_SCHEMA2_LAYER, DOCKER_SCHEMA2_LAYER_FOREIGN):
        return "" if ext else "unknown"
    if base in (DOCKER_SCHEMA2_LAYER_GZIP, DOCKER_SCHEMA2_LAYER_FOREIGN_GZIP):
        return "" if ext else "gzip"
    if base in (OCI_LAYER, OCI_LAYER_NONDISTRIBUTABLE):
        if ext and ext[-1] in ("gzip", "zstd"):
            return ext[-1]
        return ""
    return None


def ref_key(desc: Descriptor) -> str:
    """containerd's ingest ref for a fetched blob (``remotes.MakeRefKey``): ``manifest-``,
    ``index-``, ``layer-``, ``config-`` or ``unknown-``, then the digest, prefixed with
    ``<ref name>@`` when the descriptor has an ``org.opencontainers.image.ref.name``."""
    key = desc.digest
    name = (desc.annotations or {}).get(ANNOTATION_REF_NAME)
    if name is not None:
        key = f"{name}@{key}"
    media_type = desc.media_type
    if is_manifest(media_type):
        kind = "manifest"
    elif is_index(media_type):
        kind = "index"
    elif is_layer(media_type):
        kind = "layer"
    elif is_known_config(media_type):
        kind = "config"
    else:
        kind = "unknown"
    return f"{kind}-{key}"
