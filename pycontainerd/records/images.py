"""An image record (containerd's ``images.Image``): a name, labels and the target descriptor."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..descriptor import Descriptor


@dataclass(frozen=True)
class Image:
    """An image record. Times are nanoseconds since the Unix epoch (UTC)."""

    name: str
    target: Descriptor
    labels: Mapping[str, str] = field(default_factory=dict)
    created_at: int = 0
    updated_at: int = 0
