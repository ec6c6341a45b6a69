"""A snapshotter's own metadata store (containerd's ``snapshots/storage`` over bolt), in a
separate LMDB environment at ``<snapshotter root>/metadata/``.

Schema (version 1), keys in three named databases::

    meta       b"schema"                 -> b"1"
               b"next_id"                -> b"<n>"   last id handed out (never reused)
    snapshots  <key or name>             -> JSON {"id": n, "kind": "active"|"view"|"committed",
                                                  "parent": <name or "">, "labels": {...},
                                                  "created_at": ns, "updated_at": ns,
                                                  "size": bytes, "inodes": n}
    parents    <parent id><child id>     -> JSON <child key>  (two big-endian uint64, so a
                                                  prefix scan on the parent id finds children)

Ids are monotonically increasing integers; a backend names its directories by them
(``snapshots/<id>``), so a key can be reused right after a removal. The rules are
containerd's, with its words:

* only active and view snapshots are created, on top of a *committed* parent
  (``parent "p" is not committed snapshot: invalid argument``), which must exist
  (``missing parent "p" bucket: not found``); a key in use is ``ALREADY_EXISTS``;
* a snapshot with children cannot be removed (``cannot remove snapshot with child:
  failed precondition``);
* only an active snapshot can be committed (``snapshot "k" is not active: failed
  precondition``); the committed snapshot keeps the id, takes new labels and timestamps;
* mounts exist only for active snapshots and views (``requested snapshot k not active or
  view: failed precondition``).

Every function here takes a transaction (:meth:`MetaStore.view` / :meth:`MetaStore.update`)
so a backend can make a directory change and its record change one unit.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import filters as filters_mod
from .. import labels as labels_mod
from ..errdefs import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    quote,
)
from ..lmdb_env import LMDBEnv, Txn
from .types import Info, Kind, Usage, adaptor

SCHEMA_VERSION = 1
DEFAULT_MAP_SIZE = 1 << 30
_DBS = ("meta", "snapshots", "parents")


@dataclass(frozen=True)
class Snapshot:
    """An active snapshot or view as a backend needs it: its ``id``, ``kind``, the ids of
    its parents, nearest first, and its labels (the uid/gid mapping of a remapped one)."""

    id: str
    kind: Kind
    parent_ids: list[str] = field(default_factory=list)
    labels: Mapping[str, str] = field(default_factory=dict)


class MetaStore(LMDBEnv):
    """The LMDB environment of one snapshotter.

    Args:
        path: directory of the environment (created, mode 0700).
        map_size: address space LMDB may use; the file grows only as needed.

    Raises:
        FailedPrecondition: the store has a schema newer than this code.
    """

    def __init__(self, path: Path, map_size: int = DEFAULT_MAP_SIZE) -> None:
        super().__init__(path, what="snapshot metadata", dbs=_DBS, schema_version=SCHEMA_VERSION,
                         map_size=map_size, max_readers=256)

    update = LMDBEnv.update_sync
    """Run ``fn`` in one write transaction (blocking; call from a worker thread): committed
    if ``fn`` returns, rolled back if it raises."""


# ---------------------------------------------------------------------------- helpers


def _key(txn: Txn, name: str) -> bytes:
    """``name`` as a record key. Raises :class:`InvalidArgument` for an empty name, a NUL
    byte, or more bytes than an LMDB key holds."""
    if not name:
        raise InvalidArgument("snapshot key must not be empty")
    raw = name.encode()
    if b"\0" in raw:
        raise InvalidArgument(f"snapshot key {quote(name)} contains a NUL byte")
    limit = txn.max_key_size
    if len(raw) > limit:
        raise InvalidArgument(f"snapshot key {quote(name[:40] + '...')} is longer than {limit} bytes")
    return raw


def _parent_key(parent_id: int, child_id: int) -> bytes:
    return struct.pack(">QQ", parent_id, child_id)


def _info(name: str, record: Mapping[str, Any]) -> Info:
    return Info(
        name=name,
        parent=record.get("parent", ""),
        kind=Kind.parse(record["kind"]),
        labels=dict(record.get("labels") or {}),
        created_at=int(record.get("created_at", 0)),
        updated_at=int(record.get("updated_at", 0)),
    )


def _get(txn: Txn, name: str) -> dict[str, Any] | None:
    if not name or "\0" in name or len(name.encode()) > txn.max_key_size:
        return None
    return txn.get("snapshots", name.encode())


def _clean_labels(labels: Mapping[str, str] | None) -> dict[str, str]:
    try:
        return labels_mod.validate_all({k: v for k, v in (labels or {}).items() if v})
    except InvalidArgument as exc:
        raise InvalidArgument(f"info.Labels: {exc.context}") from exc


def _next_id(txn: Txn) -> int:
    meta = txn.db("meta")  # a raw counter, not JSON
    current = txn.raw.get(b"next_id", db=meta)
    nid = (int(current) if current else 0) + 1
    txn.raw.put(b"next_id", str(nid).encode(), db=meta)
    return nid


def _parents(txn: Txn, parent: str) -> list[str]:
    """Ids of ``parent`` and its ancestors, nearest first."""
    out: list[str] = []
    name = parent
    while name:
        record = _get(txn, name)
        if record is None:
            raise NotFound("missing parent")
        out.append(str(record["id"]))
        name = record.get("parent", "")
    return out


# ---------------------------------------------------------------------------- operations


def get_info(txn: Txn, key: str) -> tuple[str, Info, Usage]:
    """``(id, info, usage)`` of any snapshot. Raises :class:`NotFound`."""
    record = _get(txn, key)
    if record is None:
        raise NotFound(f"snapshot {key} does not exist")
    usage = Usage(int(record.get("size", 0)), int(record.get("inodes", 0)))
    return str(record["id"]), _info(key, record), usage


def get_snapshot(txn: Txn, key: str) -> Snapshot:
    """The active snapshot or view ``key`` with its parent chain.

    Raises:
        NotFound: no such snapshot.
        FailedPrecondition: ``key`` is committed.
    """
    record = _get(txn, key)
    if record is None:
        raise NotFound(f"snapshot {key} does not exist")
    kind = Kind.parse(record["kind"])
    if kind not in (Kind.ACTIVE, Kind.VIEW):
        raise FailedPrecondition(f"requested snapshot {key} not active or view")
    parent_ids = _parents(txn, record.get("parent", "")) if record.get("parent") else []
    return Snapshot(str(record["id"]), kind, parent_ids, dict(record.get("labels") or {}))


def create_snapshot(
    txn: Txn, kind: Kind, key: str, parent: str = "", labels: Mapping[str, str] | None = None
) -> Snapshot:
    """Record a new active snapshot or view.

    Raises:
        InvalidArgument: a kind other than active/view, bad key or labels, or a parent that
            is not committed.
        NotFound: the parent does not exist.
        AlreadyExists: ``key`` is in use.
    """
    if kind not in (Kind.ACTIVE, Kind.VIEW):
        raise InvalidArgument(
            f"snapshot type {kind} invalid; only snapshots of type Active or View can be created"
        )
    clean = _clean_labels(labels)
    raw_key = _key(txn, key)
    parent_record = None
    if parent:
        parent_record = _get(txn, parent)
        if parent_record is None:
            raise NotFound(f"missing parent {quote(parent)} bucket")
        if Kind.parse(parent_record["kind"]) != Kind.COMMITTED:
            raise InvalidArgument(f"parent {quote(parent)} is not committed snapshot")
    if txn.get("snapshots", raw_key) is not None:
        raise AlreadyExists(f"snapshot {key}")
    nid = _next_id(txn)
    now = time.time_ns()
    record = {
        "id": nid, "kind": kind.filter_name, "parent": parent, "labels": clean,
        "created_at": now, "updated_at": now, "size": 0, "inodes": 0,
    }
    txn.put("snapshots", raw_key, record)
    parent_ids: list[str] = []
    if parent_record is not None:
        txn.put("parents", _parent_key(int(parent_record["id"]), nid), key)
        parent_ids = _parents(txn, parent)
    return Snapshot(str(nid), kind, parent_ids, dict(clean))


def update_info(txn: Txn, info: Info, paths: Sequence[str] = ()) -> Info:
    """Change labels by field paths (``labels``, ``labels.<k>``; none = all labels) and
    set ``updated_at``. Raises :class:`NotFound`, :class:`InvalidArgument`."""
    record = _get(txn, info.name)
    if record is None:
        raise NotFound(f"snapshot {info.name} does not exist")
    new_labels = labels_mod.apply_field_paths(
        record.get("labels") or {}, info.labels, list(paths), f"snapshot {quote(info.name)}", "info.Labels"
    )
    record["labels"] = new_labels
    record["updated_at"] = time.time_ns()
    txn.put("snapshots", info.name.encode(), record)
    return _info(info.name, record)


def walk_info(txn: Txn, filter_texts: Sequence[str] = ()) -> list[tuple[str, Info]]:
    """``(id, info)`` of every snapshot matching any filter, in key order.
    Raises :class:`InvalidArgument` for a bad filter."""
    match = filters_mod.parse_all(filter_texts)
    out = []
    for k, v in txn.scan("snapshots", b""):
        info = _info(k.decode(), v)
        if match.match(adaptor(info)):
            out.append((str(v["id"]), info))
    return out


def remove(txn: Txn, key: str) -> tuple[str, Kind]:
    """Delete a snapshot's record; return its ``(id, kind)``.

    Raises:
        NotFound: no such snapshot.
        FailedPrecondition: it has children.
    """
    record = _get(txn, key)
    if record is None:
        raise NotFound(f"snapshot {key}")
    nid = int(record["id"])
    if txn.first_key("parents", struct.pack(">Q", nid)) is not None:
        raise FailedPrecondition("cannot remove snapshot with child")
    if record.get("parent"):
        parent_record = _get(txn, record["parent"])
        if parent_record is None:
            raise NotFound(f"snapshot {key}")
        txn.delete("parents", _parent_key(int(parent_record["id"]), nid))
    txn.delete("snapshots", key.encode())
    return str(nid), Kind.parse(record["kind"])


def commit_active(
    txn: Txn, key: str, name: str, usage: Usage, labels: Mapping[str, str] | None = None
) -> str:
    """Turn active ``key`` into committed ``name`` with ``usage`` recorded; labels are
    replaced by ``labels`` (never inherited). Returns the (unchanged) id.

    Raises:
        AlreadyExists: ``name`` is in use.
        NotFound: ``key`` does not exist.
        FailedPrecondition: ``key`` is not active.
    """
    clean = _clean_labels(labels)
    raw_name = _key(txn, name)
    if txn.get("snapshots", raw_name) is not None:
        raise AlreadyExists(f"committed snapshot {name}")
    record = _get(txn, key)
    if record is None:
        raise NotFound(f"failed to get active snapshot {quote(key)}")
    if Kind.parse(record["kind"]) != Kind.ACTIVE:
        raise FailedPrecondition(f"snapshot {quote(key)} is not active")
    now = time.time_ns()
    record.update(kind=Kind.COMMITTED.filter_name, created_at=now, updated_at=now, labels=clean,
                  size=usage.size, inodes=usage.inodes, committed_from=key)
    txn.put("snapshots", raw_name, record)
    txn.delete("snapshots", key.encode())
    if record.get("parent"):
        parent_record = _get(txn, record["parent"])
        if parent_record is None:
            raise NotFound(f"missing parent {quote(record['parent'])} of snapshot {quote(key)}")
        txn.put("parents", _parent_key(int(parent_record["id"]), int(record["id"])), name)
    return str(record["id"])


def committed_from(txn: Txn) -> dict[str, str]:
    """``{active key: committed name}`` of every committed snapshot, by the key it was
    committed from (for :func:`uncommit`)."""
    return {v["committed_from"]: k.decode() for k, v in txn.scan("snapshots", b"") if v.get("committed_from")}


def uncommit(txn: Txn, name: str, key: str, labels: Mapping[str, str] | None = None) -> None:
    """Undo :func:`commit_active`: committed ``name`` becomes active ``key`` again (same id,
    parent and directory), with ``labels``. For a commit whose caller's own transaction
    was lost in a crash (the namespaced store still names ``key``).

    Raises:
        NotFound: ``name`` does not exist.
        FailedPrecondition: ``name`` has children or is not committed.
        AlreadyExists: ``key`` is in use.
    """
    record = _get(txn, name)
    if record is None:
        raise NotFound(f"snapshot {name} does not exist")
    if Kind.parse(record["kind"]) != Kind.COMMITTED:
        raise FailedPrecondition(f"snapshot {quote(name)} is not committed")
    if txn.first_key("parents", struct.pack(">Q", int(record["id"]))) is not None:
        raise FailedPrecondition(f"cannot uncommit snapshot {quote(name)} with child")
    raw_key = _key(txn, key)
    if txn.get("snapshots", raw_key) is not None:
        raise AlreadyExists(f"snapshot {key}")
    now = time.time_ns()
    record.pop("committed_from", None)
    record.update(kind=Kind.ACTIVE.filter_name, updated_at=now, labels=_clean_labels(labels), size=0, inodes=0)
    txn.put("snapshots", raw_key, record)
    txn.delete("snapshots", name.encode())
    if record.get("parent"):
        parent_record = _get(txn, record["parent"])
        if parent_record is not None:
            txn.put("parents", _parent_key(int(parent_record["id"]), int(record["id"])), key)


def id_map(txn: Txn) -> dict[str, str]:
    """``{id: key}`` of every snapshot."""
    return {str(v["id"]): k.decode() for k, v in txn.scan("snapshots", b"")}
