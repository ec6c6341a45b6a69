"""The key schema of the metadata database (drawn in :mod:`.db`): the one place keys are
built and parsed, shared by the stores, the garbage collector, ``pyctr admin check`` and
the metrics endpoint. Plain bytes work, no ``lmdb``.

Parts are joined by NUL, which no identifier, name or digest may contain, so a prefix scan
of :func:`key_prefix` ``(ns, kind)`` sees exactly one namespace's objects of one kind.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errdefs import InvalidArgument, quote

SEP = b"\0"

# the kind part of an objects-db key: containerd's bucket names (core/metadata/buckets.go)
IMAGES = "image"
CONTAINERS = "containers"
CONTENT = "content"
SNAPSHOTS = "snapshots"
LEASES = "leases"
SANDBOXES = "sandboxes"
BLOB = "blob"
INGESTS = "ingests"


def key(*parts: str | bytes) -> bytes:
    """Join key parts with NUL. Raises :class:`InvalidArgument` if a part contains NUL."""
    out = []
    for part in parts:
        raw = part.encode() if isinstance(part, str) else part
        if SEP in raw:
            raise InvalidArgument(f"name {quote(part)} contains a NUL byte")
        out.append(raw)
    return SEP.join(out)


def key_prefix(*parts: str | bytes) -> bytes:
    """The prefix every key below ``parts`` starts with (``key(*parts)`` and a NUL)."""
    return key(*parts) + SEP


def split(raw: bytes) -> list[str]:
    """The parts of a key, decoded."""
    return [p.decode() for p in raw.split(SEP)]


# -- builders -----------------------------------------------------------------------------


def namespace_key(ns: str) -> bytes:
    """The key of a namespace in the ``namespaces`` database."""
    return key(ns)


def snapshot_seq_key(ns: str, snapshotter: str) -> bytes:
    """The key in the ``meta`` database of the last backend key number handed out to the
    namespace's snapshots on ``snapshotter``."""
    return key("snapshots.seq", ns, snapshotter)


def image_key(ns: str, name: str) -> bytes:
    return key(ns, IMAGES, name)


def container_key(ns: str, cid: str) -> bytes:
    return key(ns, CONTAINERS, cid)


def blob_key(ns: str, digest: str) -> bytes:
    return key(ns, CONTENT, BLOB, digest)


def ingest_key(ns: str, ref: str) -> bytes:
    return key(ns, CONTENT, INGESTS, ref)


def snapshot_key(ns: str, snapshotter: str, name: str) -> bytes:
    return key(ns, SNAPSHOTS, snapshotter, name)


def lease_key(ns: str, lease_id: str) -> bytes:
    return key(ns, LEASES, lease_id)


def lease_resource_key(ns: str, lease_id: str, *parts: str) -> bytes:
    """A row below a lease holding one resource: ``parts`` are ``("content", digest)``,
    ``("ingests", ref)`` or ``("snapshots", snapshotter, key)``."""
    return key(ns, LEASES, lease_id, *parts)


# -- parser -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectKey:
    """A parsed ``objects`` key: the object's ``kind`` (``image``, ``containers``,
    ``sandboxes``, ``leases``, ``content`` for a blob, ``ingests``, ``snapshots``), its
    namespace and ``id`` (``(snapshotter, key)`` for a snapshot). A row below a lease that
    holds a resource has ``lease`` set, and ``kind``/``id`` name the resource held."""

    kind: str
    ns: str
    id: str | tuple[str, str]
    lease: str = ""

    @property
    def node(self) -> tuple[str, str, str | tuple[str, str]]:
        """``(kind, ns, id)``, the garbage collector's name for the object."""
        return (self.kind, self.ns, self.id)


def parse(raw: bytes) -> ObjectKey | None:
    """The object an ``objects`` key stands for, or None for a key outside the schema."""
    parts = split(raw)
    if len(parts) < 3:
        return None
    ns, kind = parts[0], parts[1]
    if kind == LEASES and len(parts) >= 5:
        if parts[3] == SNAPSHOTS and len(parts) == 6:
            return ObjectKey(SNAPSHOTS, ns, (parts[4], parts[5]), lease=parts[2])
        return ObjectKey(parts[3], ns, parts[4], lease=parts[2])
    if kind == CONTENT and len(parts) == 4 and parts[2] == BLOB:
        return ObjectKey(CONTENT, ns, parts[3])
    if kind == CONTENT and len(parts) == 4 and parts[2] == INGESTS:
        return ObjectKey(INGESTS, ns, parts[3])
    if kind == SNAPSHOTS and len(parts) == 4:
        return ObjectKey(SNAPSHOTS, ns, (parts[2], parts[3]))
    if kind in (IMAGES, CONTAINERS, SANDBOXES, LEASES) and len(parts) == 3:
        return ObjectKey(kind, ns, parts[2])
    return None
