"""A namespace record: its name and labels."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Namespace:
    """A namespace: ``name`` (an identifier) and its ``labels``."""

    name: str
    labels: dict[str, str] = field(default_factory=dict)
