"""Garbage collection of the metadata: mark from roots, sweep the rest (containerd's
``metadata/gc.go`` rules).

Nodes are ``(kind, namespace, id)`` with kind ``content`` (id: digest), ``snapshots`` (id:
``(snapshotter, key)``), ``ingests`` (id: ref), ``leases``, ``image``, ``containers``,
``sandboxes``.

Roots, per namespace:

* every image (→ its target's content), every container (→ its snapshot) and sandbox;
* every lease not past ``containerd.io/gc.expire`` (→ the resources it holds; with the
  label ``containerd.io/gc.flat`` those are kept but their children are not followed);
* content and snapshots labelled ``containerd.io/gc.root``;
* every ingest record with an ``expire_at`` (set for ingests no lease holds), until it
  passes; an ingest without one is kept only by a lease. An ingest nothing keeps is
  removed and the content sweeper aborts its data.

Edges: labels ``containerd.io/gc.ref.content`` / ``containerd.io/gc.ref.content.<name>``
(also ``/<name>``) → content; ``containerd.io/gc.ref.snapshot.<snapshotter>[/<name>]`` →
snapshot; a snapshot → its parent.

The sweep deletes, in the same write transaction, unmarked content and snapshot
references and expired leases, then lets each backend remove what no namespace references
any more (``sweepers``) — only the backends that may have something to remove, as
containerd's ``dirty`` marks: those named in ``dirty`` (a delete made them so) and those
whose references this collection removed (``dirty=None``: every backend). A backend's
sweeper is named ``content`` or ``snapshotter/<name>`` (:func:`backend_of`); walking a
backend that lost nothing (a lease that held nothing was deleted) is a directory walk of
every blob and snapshot for nothing. The whole collection runs inside one LMDB write transaction, so
no other write (a commit adding a reference) can interleave with it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from .db import Txn
from .keys import LEASES, blob_key, ingest_key, key_prefix, lease_key, parse, snapshot_key

LABEL_ROOT = "containerd.io/gc.root"
LABEL_CONTENT_REF = "containerd.io/gc.ref.content"
LABEL_SNAPSHOT_REF = "containerd.io/gc.ref.snapshot."
LABEL_EXPIRE = "containerd.io/gc.expire"
LABEL_FLAT = "containerd.io/gc.flat"

Node = tuple[str, str, object]
Sweeper = Callable[[Txn, "Result"], None]


@dataclass
class Result:
    """What one collection removed and what stays referenced (for backend sweepers)."""

    removed: list[Node] = field(default_factory=list)
    live_content: set[str] = field(default_factory=set)
    live_snapshots: dict[str, set[str]] = field(default_factory=dict)
    backend_removed: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    #: blocking work a sweeper leaves for after the collection's transaction commits
    #: (deleting directories it renamed aside), run by the scheduler outside the write lock
    after_commit: list[Callable[[], None]] = field(default_factory=list)


def label_refs(ns: str, labels: Mapping[str, str]) -> Iterable[Node]:
    """The nodes a set of labels points to."""
    for k, v in labels.items():
        if k == LABEL_CONTENT_REF or (
            k.startswith(LABEL_CONTENT_REF) and k[len(LABEL_CONTENT_REF)] in "./"
        ):
            yield ("content", ns, v)
        elif k.startswith(LABEL_SNAPSHOT_REF) and len(k) > len(LABEL_SNAPSHOT_REF):
            snapshotter = k[len(LABEL_SNAPSHOT_REF):].split("/", 1)[0]
            yield ("snapshots", ns, (snapshotter, v))


def _expired(labels: Mapping[str, str], now: float) -> bool:
    text = labels.get(LABEL_EXPIRE)
    if not text:
        return False
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() < now
    except ValueError:
        return False  # containerd ignores an invalid expiration value


def backend_of(node: Node) -> str | None:
    """The sweeper name of the backend holding what a removed node referenced."""
    kind = node[0]
    if kind in ("content", "ingests"):
        return "content"
    if kind == "snapshots":
        return f"snapshotter/{node[2][0]}"  # type: ignore[index]
    return None


def collect(txn: Txn, sweepers: Mapping[str, Sweeper] = (), now: float | None = None,
            dirty: Iterable[str] | None = None) -> Result:
    """Mark and sweep inside ``txn`` (a write transaction); return what was removed.
    ``dirty``: the sweepers to run besides those of backends that lost references here
    (None: all of them)."""
    started = time.monotonic()
    now = time.time() if now is None else now
    edges: dict[Node, list[Node]] = {}
    roots: list[Node] = []
    flat: set[Node] = set()
    present: set[Node] = set()
    expired_leases: list[Node] = []

    for raw, value in txn.scan("objects", b""):
        parsed = parse(raw)
        if parsed is None:
            continue
        if parsed.lease:  # a resource row below a lease: <ns> leases <id> <kind> ...
            edges.setdefault((LEASES, parsed.ns, parsed.lease), []).append(parsed.node)
            continue
        node: Node = parsed.node
        present.add(node)
        kind, ns, _ = node
        labels = value.get("labels") or {}
        out = edges.setdefault(node, [])
        out.extend(label_refs(ns, labels))
        if kind == "image":
            roots.append(node)
            digest = (value.get("target") or {}).get("digest")
            if digest:
                out.append(("content", ns, digest))
        elif kind in ("containers", "sandboxes"):
            roots.append(node)
            if value.get("snapshotter") and value.get("snapshot_key"):
                out.append(("snapshots", ns, (value["snapshotter"], value["snapshot_key"])))
        elif kind == "leases":
            if _expired(labels, now):
                expired_leases.append(node)
            else:
                roots.append(node)
                if LABEL_FLAT in labels:
                    flat.add(node)
        elif kind == "ingests":
            # containerd's rule: only an unexpired ``expire_at`` makes an ingest a root; one
            # without (written under a lease) lives only as long as a lease holds it
            expire_at = value.get("expire_at")
            if expire_at and expire_at > now * 1e9:
                roots.append(node)
        elif kind == "snapshots":
            if LABEL_ROOT in labels:
                roots.append(node)
            parent = value.get("parent")
            if parent:
                out.append(("snapshots", ns, (node[2][0], parent)))
        elif kind == "content" and LABEL_ROOT in labels:
            roots.append(node)

    live: set[Node] = set()
    queue = deque(roots)
    while queue:
        node = queue.popleft()
        if node in live:
            continue
        live.add(node)
        for child in edges.get(node, ()):
            if node in flat:
                live.add(child)
            elif child not in live:
                queue.append(child)

    result = Result()
    for node in sorted(present - live, key=repr):
        kind, ns, ident = node
        if kind == "content":
            txn.delete("objects", blob_key(ns, ident))
        elif kind == "snapshots":
            snapshotter, snap_key = ident
            txn.delete("objects", snapshot_key(ns, snapshotter, snap_key))
        elif kind == "ingests":
            txn.delete("objects", ingest_key(ns, ident))
        else:
            continue
        result.removed.append(node)
    for node in expired_leases:
        _, ns, lease_id = node
        txn.delete("objects", lease_key(ns, lease_id))
        txn.delete_prefix("objects", key_prefix(ns, LEASES, lease_id))
        result.removed.append(node)

    for kind, ns, ident in live & present:
        if kind == "content":
            result.live_content.add(ident)
        elif kind == "snapshots":
            result.live_snapshots.setdefault(ident[0], set()).add(ident[1])
    if dirty is not None:
        dirty = set(dirty) | {backend_of(node) for node in result.removed}
    for name, sweep in dict(sweepers).items():
        if dirty is None or name in dirty:
            sweep(txn, result)
    result.seconds = time.monotonic() - started
    return result
