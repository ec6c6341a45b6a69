"""Image records ⇄ ``containerd.services.images.v1.Image``."""

from __future__ import annotations

from ...api.services.images.v1 import images_pb2
from ...records.images import Image
from ..convert import descriptor_from_pb, descriptor_to_pb, timestamp


def image_to_pb(image: Image) -> images_pb2.Image:
    return images_pb2.Image(
        name=image.name,
        labels=dict(image.labels),
        target=descriptor_to_pb(image.target),
        created_at=timestamp(image.created_at),
        updated_at=timestamp(image.updated_at),
    )


def image_from_pb(image: images_pb2.Image) -> Image:
    """The record as a request carries it: times stay 0 (the store sets them)."""
    return Image(name=image.name, labels=dict(image.labels), target=descriptor_from_pb(image.target))
