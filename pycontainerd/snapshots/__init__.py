"""Snapshots: layered filesystem trees that snapshotters build and describe as mounts.

Layers, as in containerd:

* :mod:`.types` — :class:`Kind`, :class:`Info`, :class:`Usage`, the :class:`Snapshotter`
  protocol (async) and :class:`SyncSnapshotter` (the blocking calls a backend adds);
* :mod:`.storage` — a backend's own LMDB store of snapshot records (ids, parents, kinds);
* :mod:`.overlay`, :mod:`.native` — the backends; they *return* mounts and never mount;
* :mod:`pycontainerd.metadata.snapshots` — the namespaced view over a backend that every
  client goes through (keys per namespace, leases, garbage collection, events).
"""

from __future__ import annotations

from .types import (
    INHERITED_LABELS_PREFIX,
    LABEL_SNAPSHOT_REF,
    Info,
    Kind,
    Snapshotter,
    SyncSnapshotter,
    Usage,
    adaptor,
    host_platform,
    inherited_labels,
)

__all__ = [
    "INHERITED_LABELS_PREFIX",
    "LABEL_SNAPSHOT_REF",
    "Info",
    "Kind",
    "Snapshotter",
    "SyncSnapshotter",
    "Usage",
    "adaptor",
    "host_platform",
    "inherited_labels",
]
