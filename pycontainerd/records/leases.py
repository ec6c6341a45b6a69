"""A lease record (containerd's ``leases.Lease``) and the resources a lease holds."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

LABEL_EXPIRE = "containerd.io/gc.expire"


@dataclass(frozen=True)
class Lease:
    """A lease: ``id``, ``labels``, ``created_at`` (ns since the epoch)."""

    id: str
    labels: Mapping[str, str] = field(default_factory=dict)
    created_at: int = 0

    def expired(self, now: float | None = None) -> bool:
        """True when ``containerd.io/gc.expire`` is set and in the past (an unparsable
        value never expires, as containerd treats it)."""
        text = self.labels.get(LABEL_EXPIRE)
        if not text:
            return False
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return False
        return when.timestamp() < (time.time() if now is None else now)


@dataclass(frozen=True)
class Resource:
    """A resource held by a lease: ``type`` is ``content``, ``ingests`` or
    ``snapshots/<snapshotter>``; ``id`` the digest, ingest ref or snapshot key."""

    id: str
    type: str
