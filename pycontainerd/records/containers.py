"""A container record (containerd's ``containers.Container``): metadata only, no process."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..typeurl import AnyValue


@dataclass(frozen=True)
class Runtime:
    name: str
    options: AnyValue | None = None


@dataclass(frozen=True)
class Container:
    """A container record; times in ns since the epoch."""

    id: str
    runtime: Runtime
    spec: AnyValue | None = None
    image: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    snapshotter: str = ""
    snapshot_key: str = ""
    extensions: Mapping[str, AnyValue] = field(default_factory=dict)
    created_at: int = 0
    updated_at: int = 0
