"""What ``pyctr admin check`` reads, without taking the daemon's side: the on-disk layout
under ``--root``/``--state``, the metadata and snapshotter environments read in one read
transaction each (keys parsed by :mod:`pycontainerd.metadata.keys`, garbage marked by
:func:`pycontainerd.metadata.gc.collect` itself), blob files, task bundles, manifests."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .. import digest as digest_mod
from ..digest import ALGORITHM
from ..lmdb_env import read_rows
from ..metadata import gc
from ..metadata.gc import LABEL_EXPIRE
from ..metadata.keys import CONTAINERS, CONTENT, IMAGES, INGESTS, LEASES, SNAPSHOTS, parse

DEFAULT_ROOT = "/var/lib/pycontainerd"
DEFAULT_STATE = "/run/pycontainerd"

METADATA_DIR = "io.containerd.metadata.v1.lmdb"
CONTENT_DIR = "io.containerd.content.v1.content"
SNAPSHOTTER_PREFIX = "io.containerd.snapshotter.v1."
TASK_DIR = "io.containerd.runtime.v2.task"
DIFFER_DIR = "io.containerd.differ.v1.walking"
CRI_DIR = "io.containerd.grpc.v1.cri"
CRI_NAMESPACE = "k8s.io"
LOCK_FILE = "pycontainerd.lock"



@dataclass
class NamespaceRows:
    """One namespace's records as read, by kind (keyed as :func:`pycontainerd.metadata.keys.parse`
    names them), and the resources each lease holds."""

    images: dict[str, dict] = field(default_factory=dict)
    blobs: dict[str, dict] = field(default_factory=dict)
    ingests: dict[str, dict] = field(default_factory=dict)
    containers: dict[str, dict] = field(default_factory=dict)
    snapshots: dict[tuple[str, str], dict] = field(default_factory=dict)
    leases: dict[str, dict] = field(default_factory=dict)
    lease_resources: dict[str, list[tuple[str, Any]]] = field(default_factory=dict)


class _RowsTxn:
    """Just enough of :class:`pycontainerd.metadata.db.Txn` over rows already read, for
    :func:`pycontainerd.metadata.gc.collect` to mark: deletes are only recorded."""

    def __init__(self, rows: dict[str, list[tuple[bytes, bytes]]]) -> None:
        self.rows = rows
        self.deleted: list[bytes] = []

    def scan(self, dbname: str, prefix: bytes) -> Iterator[tuple[bytes, Any]]:
        for k, v in self.rows.get(dbname, ()):
            if k.startswith(prefix):
                yield k, json.loads(v)

    def delete(self, dbname: str, k: bytes) -> bool:
        self.deleted.append(k)
        return True

    def delete_prefix(self, dbname: str, prefix: bytes) -> int:
        return 0


def load_metadata(root: Path, now: float) -> tuple[dict[str, NamespaceRows], list[tuple[str, str, Any]]]:
    """Every namespace's objects, and what a garbage collection would remove now (marked by
    :func:`pycontainerd.metadata.gc.collect` itself, over the rows read)."""
    data = read_rows(root / METADATA_DIR, ("namespaces", "objects"))
    garbage = gc.collect(_RowsTxn(data), now=now).removed  # type: ignore[arg-type]
    out: dict[str, NamespaceRows] = {k.decode(): NamespaceRows() for k, _ in data["namespaces"]}
    by_kind = {IMAGES: "images", CONTAINERS: "containers", CONTENT: "blobs", INGESTS: "ingests",
               SNAPSHOTS: "snapshots", LEASES: "leases"}
    for raw, value in data["objects"]:
        parsed = parse(raw)
        if parsed is None:
            continue
        ns = out.setdefault(parsed.ns, NamespaceRows())
        if parsed.lease:
            ns.lease_resources.setdefault(parsed.lease, []).append((parsed.kind, parsed.id))
        elif parsed.kind in by_kind:
            getattr(ns, by_kind[parsed.kind])[parsed.id] = json.loads(value)
    return out, garbage


@dataclass
class SnapshotterRows:
    """One snapshotter's own records (by backend key) and the directories it has."""

    name: str
    root: Path
    records: dict[str, dict] = field(default_factory=dict)  # backend key -> record
    dirs: set[str] = field(default_factory=set)

    def needs_dir(self, record: Mapping[str, Any]) -> bool:
        # the native snapshotter gives a view with a parent no directory of its own
        return not (self.name == "native" and record.get("kind") == "view" and record.get("parent"))


def load_snapshotters(root: Path) -> dict[str, SnapshotterRows]:
    out = {}
    try:
        entries = sorted(os.listdir(root))
    except FileNotFoundError:
        return out
    for entry in entries:
        if not entry.startswith(SNAPSHOTTER_PREFIX) or not (root / entry / "metadata").is_dir():
            continue
        sn = SnapshotterRows(entry[len(SNAPSHOTTER_PREFIX):], root / entry)
        rows = read_rows(root / entry / "metadata", ("snapshots",))["snapshots"]
        sn.records = {k.decode(): json.loads(v) for k, v in rows}
        try:
            sn.dirs = set(os.listdir(root / entry / "snapshots"))
        except FileNotFoundError:
            pass
        out[sn.name] = sn
    return out


def _parse_rfc3339(text: str) -> float | None:
    try:
        return datetime.fromisoformat(text.strip().replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def lease_expired(record: Mapping[str, Any], now: float) -> bool:
    text = (record.get("labels") or {}).get(LABEL_EXPIRE)
    when = _parse_rfc3339(text) if text else None
    return when is not None and when < now


def blob_files(content_root: Path) -> list[str]:
    """The digest of every blob file the content sweeper walks (what
    :meth:`pycontainerd.content.local.LocalStore.walk_sync` lists: valid digests under
    ``blobs/sha256/``)."""
    try:
        names = sorted(os.listdir(content_root / "blobs" / ALGORITHM))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [f"{ALGORITHM}:{n}" for n in names if digest_mod.is_valid(f"{ALGORITHM}:{n}")]


def task_bundles(state: Path) -> list[tuple[str, str]]:
    base = state / TASK_DIR
    out = []
    try:
        namespaces = sorted(os.listdir(base))
    except FileNotFoundError:
        return out
    for ns in namespaces:
        if ns.startswith(".") or not (base / ns).is_dir():
            continue
        out.extend((ns, id) for id in sorted(os.listdir(base / ns))
                   if not id.startswith(".") and (base / ns / id).is_dir())
    return out


def descriptors(doc: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """The descriptors a manifest or index names: config, layers, manifests."""
    if isinstance(doc.get("config"), dict):
        yield doc["config"]
    for key in ("layers", "manifests"):
        for d in doc.get(key) or ():
            if isinstance(d, dict):
                yield d


def hash_file(path: Path, algorithm: str) -> str | None:
    try:
        h = hashlib.new(algorithm)
    except ValueError:
        return None
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return f"{algorithm}:{h.hexdigest()}"

