"""The plain types of snapshots and the two snapshotter interfaces (containerd's
``snapshots/snapshotter.go``).

A snapshot is a filesystem tree identified by a *key* (while active or a view) or a
*name* (once committed). Life cycle::

    Prepare(key, parent) ──► ACTIVE ──Commit(name, key)──► COMMITTED ──► parent of others
    View(key, parent)    ──► VIEW   (read-only, can never be committed)

* only a committed snapshot may be a parent;
* a snapshot with children cannot be removed (``FAILED_PRECONDITION``);
* committing replaces the key by the name: the key is gone afterwards.

:class:`Snapshotter` is the asynchronous interface every user sees (the namespaced store,
the gRPC service, the diff applier). :class:`SyncSnapshotter` is what a *backend* (overlayfs,
native) offers in addition, so that the namespaced layer can call it inside a metadata
write transaction and the garbage collector can call it on its worker thread.
"""

from __future__ import annotations

import enum
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from .. import filters
from ..mount import Mount

LABEL_SNAPSHOT_REF = "containerd.io/snapshot.ref"
"""Label naming the committed snapshot an unpack will produce (the layer's chain id)."""
INHERITED_LABELS_PREFIX = "containerd.io/snapshot/"
"""Labels with this prefix (and :data:`LABEL_SNAPSHOT_REF`) are passed down to backends."""
UNPACK_KEY_PREFIX = "extract"
LABEL_UID_MAPPING = "containerd.io/snapshot/uidmapping"
LABEL_GID_MAPPING = "containerd.io/snapshot/gidmapping"
"""containerd 2's labels asking for a snapshot remapped to a user namespace:
``<container id>:<host id>:<size>`` (the overlay snapshotter id-maps its lower layers)."""


class Kind(enum.IntEnum):
    """Snapshot kinds, with containerd's numbering (also the wire enum's values)."""

    UNKNOWN = 0
    VIEW = 1
    ACTIVE = 2
    COMMITTED = 3

    def __str__(self) -> str:  # "Active", as containerd's Kind.String()
        return self.name.capitalize()

    @property
    def filter_name(self) -> str:
        """The value filters compare ``kind`` with: ``active``, ``view``, ``committed``."""
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Kind:
        """``"active"``/``"view"``/``"committed"`` (any case); anything else is UNKNOWN."""
        try:
            kind = cls[text.upper()]
        except KeyError:
            return cls.UNKNOWN
        return kind


@dataclass(frozen=True)
class Info:
    """What a snapshotter knows about one snapshot.

    Attributes:
        name: the key (active, view) or name (committed).
        parent: name of the committed parent, ``""`` for none.
        kind: the :class:`Kind`.
        labels: labels (string to string).
        created_at, updated_at: nanoseconds since the Unix epoch.
    """

    name: str
    parent: str = ""
    kind: Kind = Kind.UNKNOWN
    labels: Mapping[str, str] = field(default_factory=dict)
    created_at: int = 0
    updated_at: int = 0


@dataclass(frozen=True)
class Usage:
    """Resources a snapshot uses: ``size`` in bytes (allocated blocks) and ``inodes``."""

    size: int = 0
    inodes: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.size + other.size, self.inodes + other.inodes)


def inherited_labels(labels: Mapping[str, str] | None) -> dict[str, str]:
    """The labels a namespaced snapshotter passes to its backend
    (containerd's ``FilterInheritedLabels``)."""
    return {
        k: v
        for k, v in (labels or {}).items()
        if k == LABEL_SNAPSHOT_REF or k.startswith(INHERITED_LABELS_PREFIX)
    }


def adaptor(info: Info) -> filters.Adaptor:
    """containerd's snapshot filter fields: ``kind`` (active/view/committed), ``name``,
    ``parent`` (always present, possibly empty) and ``labels.<key>``."""

    def field_of(path: Sequence[str]) -> str | None:
        if not path:
            return None
        head = path[0]
        if head == "kind":
            return info.kind.filter_name if info.kind != Kind.UNKNOWN else None
        if head == "name":
            return info.name
        if head == "parent":
            return info.parent
        if head == "labels":
            return filters.adapt_labels(path, info.labels) if info.labels else None
        return None

    return field_of


def host_platform() -> dict[str, str]:
    """This host's platform as a plugin reports it (``os``, ``architecture``, ``variant``),
    the way containerd's ``platforms.DefaultSpec()`` names it."""
    machine = platform.machine().lower()
    arch, variant = {
        "x86_64": ("amd64", ""),
        "amd64": ("amd64", ""),
        "aarch64": ("arm64", "v8"),
        "arm64": ("arm64", "v8"),
        "armv7l": ("arm", "v7"),
        "armv6l": ("arm", "v6"),
        "i386": ("386", ""),
        "i686": ("386", ""),
    }.get(machine, (machine, ""))
    out = {"os": "linux", "architecture": arch}
    if variant:
        out["variant"] = variant
    return out


@runtime_checkable
class Snapshotter(Protocol):
    """The snapshotter interface (containerd's ``snapshots.Snapshotter`` plus ``Cleaner``).

    Errors: :class:`~pycontainerd.errdefs.NotFound` for a missing key, parent or name;
    :class:`~pycontainerd.errdefs.AlreadyExists` for a key or name in use;
    :class:`~pycontainerd.errdefs.FailedPrecondition` for an operation the snapshot's kind
    or children forbid; :class:`~pycontainerd.errdefs.InvalidArgument` for bad labels,
    field paths, filters or a parent that is not committed.
    """

    async def stat(self, key: str) -> Info:
        """Info of the snapshot ``key`` (active, view or committed)."""

    async def update(self, info: Info, paths: Sequence[str] = ()) -> Info:
        """Change the labels of ``info.name`` by field paths (``labels``,
        ``labels.<key>``; none = replace all labels); any other path is InvalidArgument."""

    async def usage(self, key: str) -> Usage:
        """Disk usage: measured now for an active snapshot, recorded at commit otherwise."""

    async def mounts(self, key: str) -> list[Mount]:
        """The mounts of an active snapshot or a view (FailedPrecondition for committed)."""

    async def prepare(self, key: str, parent: str = "", labels: Mapping[str, str] | None = None) -> list[Mount]:
        """Create an active snapshot on top of committed ``parent``; return its mounts."""

    async def view(self, key: str, parent: str = "", labels: Mapping[str, str] | None = None) -> list[Mount]:
        """Create a read-only view of committed ``parent``; return its mounts."""

    async def commit(self, name: str, key: str, labels: Mapping[str, str] | None = None) -> None:
        """Turn active ``key`` into committed ``name`` (labels replace, never inherit)."""

    async def remove(self, key: str) -> None:
        """Remove a snapshot without children."""

    async def walk(self, filters: Sequence[str] = ()) -> list[Info]:
        """Every snapshot matching any filter (all when none)."""

    async def cleanup(self) -> None:
        """Free disk resources no snapshot uses any more."""

    async def close(self) -> None:
        """Release the snapshotter's resources; calling it twice is fine."""


@runtime_checkable
class SyncSnapshotter(Protocol):
    """The blocking twins of :class:`Snapshotter`'s methods that a backend offers, for
    callers already on a worker thread (inside a metadata transaction, the garbage
    collector). Never call these on the event loop."""

    name: str

    def stat_sync(self, key: str) -> Info: ...

    def update_sync(self, info: Info, paths: Sequence[str] = ()) -> Info: ...

    def usage_sync(self, key: str) -> Usage: ...

    def mounts_sync(self, key: str) -> list[Mount]: ...

    def prepare_sync(self, key: str, parent: str = "", labels: Mapping[str, str] | None = None) -> list[Mount]: ...

    def view_sync(self, key: str, parent: str = "", labels: Mapping[str, str] | None = None) -> list[Mount]: ...

    def commit_sync(self, name: str, key: str, labels: Mapping[str, str] | None = None) -> None: ...

    def remove_sync(self, key: str, trash: list[Path] | None = None) -> None: ...

    def empty_trash_sync(self, trash: Sequence[Path]) -> None: ...

    def walk_sync(self, filters: Sequence[str] = ()) -> list[Info]: ...

    def cleanup_sync(self) -> None: ...
