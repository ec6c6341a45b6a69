"""A consistency checker for a daemon's state on disk (``pyctr admin check``).

It reads ``--root`` and ``--state`` directly — the metadata and snapshotter LMDB
environments opened **read-only** (an LMDB reader never blocks the writer and sees one
committed snapshot), the content store's files, ``/proc/self/mountinfo`` and ``/proc`` —
so it works whether the daemon is running or not, and changes nothing.

What it checks, with the object each problem names (see :class:`Problem`):

===========  ===========================================================================
kind         problem
===========  ===========================================================================
image        a blob the image needs — its target and, following the garbage collector's
             ``containerd.io/gc.ref.content*`` labels (:mod:`pycontainerd.metadata.gc`),
             every config, layer and child manifest — missing from the namespace, missing
             on disk, or of another size than the descriptor or record says
content      a namespace's blob record whose file is missing or has another size (or,
             with ``verify_digests``, another digest); a blob nothing references any
             more (garbage: the collector runs at start-up and after every delete — the
             marking is :func:`pycontainerd.metadata.gc.collect`'s own); a blob file no
             namespace records (garbage the content sweeper deletes, as containerd's)
container    its snapshot missing from the namespace or from the snapshotter
snapshot     a namespace's record naming a backend snapshot that does not exist, or a
             missing parent, or that nothing references (garbage); a backend snapshot with no directory; a directory under
             ``snapshots/`` no record names; a backend snapshot no namespace references
lease        content or a snapshot it holds that does not exist (an ingest it holds may
             be gone: a write committed under another lease releases only that one's hold);
             an expired lease still there
ingest       an ingest directory no namespace records; an ingest past its expiry or held
             by no live lease (garbage the collector should have removed)
mount        a mount under ``--root``/``--state`` that no running task (or CRI sandbox)
             owns
task         a task whose shim is gone while its container's processes still run (found
             through runc's state under ``<state>/runc``, its cgroups, its ``init.pid``
             and processes whose root or cwd is in its rootfs)
shim         a shim process whose bundle is gone or whose container has no record; one
             whose bundle's ``work`` link names another daemon root is only pointed out
bundle       a task bundle with no shim serving it
===========  ===========================================================================

Fix commands are quoted for a POSIX shell (:func:`shlex.quote`). Advice stays on the safe
side: a task's rootfs whose shim is gone is left to the daemon's own clean-up (``runc
delete --force``, then unmount) rather than a bare ``umount``; a shim is never to be killed
while the daemon runs (it may be starting or stopping a task), nor when it belongs to
another root. A ``--root`` without a metadata database, or a missing ``--state``, is an
error, not an empty state.

Transient states of a daemon at work — a snapshot directory ``new-*`` being created or
``rm-*`` being removed, a layer being applied on a temporary mount (which the daemon holds
open) — are accepted while the daemon runs (its lock on ``<root>/pycontainerd.lock`` is
held) and reported when it does not: then nothing is in progress and they are left-overs
of a crash. A check of a busy
daemon is a snapshot in time: run it again before acting on a problem that may be a
write in flight.

Example::

    report = check("/var/lib/pycontainerd", "/run/pycontainerd")
    for p in report.problems:
        print(p.line())
    sys.exit(0 if report.ok else 1)
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import lmdb

from .. import digest as digest_mod
from ..digest import ALGORITHM
from ..metadata import gc
from ..metadata.gc import LABEL_EXPIRE, label_refs

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

_SEP = b"\0"
_JSON_LIMIT = 4 << 20  # manifests and indexes above this size are not parsed


@dataclass(frozen=True, order=True)
class Problem:
    """One inconsistency: ``namespace`` (``-`` for what is below namespaces), ``kind`` of
    the object, its ``id`` (name, id, digest or path), ``problem`` (what is wrong) and
    ``fix`` (what a person can do about it)."""

    namespace: str
    kind: str
    id: str
    problem: str
    fix: str = ""

    def line(self) -> str:
        """``<namespace> <kind> <id>: <problem> [fix: <fix>]`` on one line."""
        text = f"{self.namespace} {self.kind} {self.id}: {self.problem}"
        return f"{text} [fix: {self.fix}]" if self.fix else text


@dataclass
class Report:
    """What :func:`check` found: ``problems`` (sorted), counts of what was ``checked`` by
    kind, and whether the daemon was running at the time."""

    root: str
    state: str
    daemon_running: bool
    problems: list[Problem] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {"root": self.root, "state": self.state, "daemon_running": self.daemon_running,
                "ok": self.ok, "checked": {k.replace(" ", "_"): n for k, n in self.checked.items()},  # snake_case keys
                "problems": [asdict(p) for p in self.problems]}


# --- reading -----------------------------------------------------------------------------


def _cmd(*args: object) -> str:
    """A command line for a fix text, every argument quoted for a POSIX shell."""
    return " ".join(shlex.quote(str(a)) for a in args)


def _read_env(path: Path, dbnames: Iterable[str]) -> dict[str, list[tuple[bytes, bytes]]]:
    """Every ``(key, value)`` of the named databases of the LMDB env at ``path``, read in one
    read-only transaction (a database that does not exist yet reads as empty)."""
    out: dict[str, list[tuple[bytes, bytes]]] = {name: [] for name in dbnames}
    if not (path / "data.mdb").exists():
        return out
    env = lmdb.open(str(path), readonly=True, lock=True, max_dbs=8, subdir=True, max_readers=512)
    try:
        with env.begin(write=False) as txn:
            for name in out:
                try:
                    db = env.open_db(name.encode(), txn=txn, create=False)
                except lmdb.NotFoundError:
                    continue
                out[name] = list(txn.cursor(db=db))
    finally:
        env.close()
    return out


@dataclass
class _Namespace:
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


def _load_metadata(root: Path, now: float) -> tuple[dict[str, _Namespace], list[tuple[str, str, Any]]]:
    """Every namespace's objects, and what a garbage collection would remove now (marked by
    :func:`pycontainerd.metadata.gc.collect` itself, over the rows read)."""
    data = _read_env(root / METADATA_DIR, ("namespaces", "objects"))
    garbage = gc.collect(_RowsTxn(data), now=now).removed  # type: ignore[arg-type]
    out: dict[str, _Namespace] = {k.decode(): _Namespace() for k, _ in data["namespaces"]}
    for raw, value in data["objects"]:
        parts = [p.decode() for p in raw.split(_SEP)]
        if len(parts) < 3:
            continue
        ns = out.setdefault(parts[0], _Namespace())
        record = json.loads(value)
        kind = parts[1]
        if kind == "leases" and len(parts) >= 5:
            resource = ((parts[3], (parts[4], parts[5])) if parts[3] == "snapshots" and len(parts) == 6
                        else (parts[3], parts[4]))
            ns.lease_resources.setdefault(parts[2], []).append(resource)
        elif kind == "leases" and len(parts) == 3:
            ns.leases[parts[2]] = record
        elif kind == "image" and len(parts) == 3:
            ns.images[parts[2]] = record
        elif kind == "containers" and len(parts) == 3:
            ns.containers[parts[2]] = record
        elif kind == "content" and len(parts) == 4 and parts[2] == "blob":
            ns.blobs[parts[3]] = record
        elif kind == "content" and len(parts) == 4 and parts[2] == "ingests":
            ns.ingests[parts[3]] = record
        elif kind == "snapshots" and len(parts) == 4:
            ns.snapshots[(parts[2], parts[3])] = record
    return out, garbage


@dataclass
class _Snapshotter:
    name: str
    root: Path
    records: dict[str, dict] = field(default_factory=dict)  # backend key -> record
    dirs: set[str] = field(default_factory=set)

    def needs_dir(self, record: Mapping[str, Any]) -> bool:
        # the native snapshotter gives a view with a parent no directory of its own
        return not (self.name == "native" and record.get("kind") == "view" and record.get("parent"))


def _load_snapshotters(root: Path) -> dict[str, _Snapshotter]:
    out = {}
    try:
        entries = sorted(os.listdir(root))
    except FileNotFoundError:
        return out
    for entry in entries:
        if not entry.startswith(SNAPSHOTTER_PREFIX) or not (root / entry / "metadata").is_dir():
            continue
        sn = _Snapshotter(entry[len(SNAPSHOTTER_PREFIX):], root / entry)
        rows = _read_env(root / entry / "metadata", ("snapshots",))["snapshots"]
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


def _lease_expired(record: Mapping[str, Any], now: float) -> bool:
    text = (record.get("labels") or {}).get(LABEL_EXPIRE)
    when = _parse_rfc3339(text) if text else None
    return when is not None and when < now


def daemon_running(root: Path) -> bool:
    """True when a process holds the daemon's ``flock`` on ``<root>/pycontainerd.lock``
    (read from ``/proc/locks``, so the check itself never takes the lock — a daemon
    starting meanwhile must not find it taken)."""
    try:
        st = os.stat(root / LOCK_FILE)
        with open("/proc/locks") as f:
            lines = f.read().splitlines()
    except OSError:
        return False
    want = (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
    for line in lines:
        fields = line.split()
        if "FLOCK" not in fields or "->" in fields:
            continue
        try:
            major, minor, inode = fields[5].split(":")
            if (int(major, 16), int(minor, 16), int(inode)) == want:
                return True
        except (IndexError, ValueError):
            continue
    # some filesystems (overlayfs) show another device in /proc/locks: does the pid the
    # lock file names hold it open?
    return str(root / LOCK_FILE) in _open_paths(_lock_owner(root))


def _unescape(path: str) -> str:
    """Undo mountinfo's octal escapes (``\\040`` for a space)."""
    if "\\" not in path:
        return path
    return path.encode().decode("unicode_escape").encode("latin-1").decode(errors="surrogateescape")


def mount_points(mountinfo: str = "/proc/self/mountinfo") -> list[tuple[str, str]]:
    """``(mount point, filesystem type)`` of every mount, in mount order."""
    out = []
    with open(mountinfo) as f:
        for line in f:
            fields = line.split()
            try:
                fstype = fields[fields.index("-") + 1]
            except (ValueError, IndexError):
                fstype = "?"
            out.append((_unescape(fields[4]), fstype))
    return out


@dataclass(frozen=True)
class ShimProcess:
    """A process whose working directory is a task bundle and that leads its own session
    (how every runtime v2 shim runs): its ``pid`` and the bundle's ``namespace``/``id``;
    ``gone`` when the bundle was removed under it."""

    pid: int
    namespace: str
    id: str
    gone: bool


def shim_processes(state: Path, proc: str = "/proc") -> list[ShimProcess]:
    """The shims of the daemon whose ``--state`` is ``state`` (see :class:`ShimProcess`)."""
    base = str(state / TASK_DIR) + "/"
    out = []
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            cwd = os.readlink(f"{proc}/{pid}/cwd")
            if os.getsid(pid) != pid:
                continue
        except OSError:
            continue
        gone = cwd.endswith(" (deleted)")
        if gone:
            cwd = cwd[: -len(" (deleted)")]
        if not cwd.startswith(base):
            continue
        parts = cwd[len(base):].split("/")
        if len(parts) != 2:
            continue  # a container's process lives below <bundle>/rootfs
        ns, id = parts
        if id.startswith("."):  # renamed for deletion
            gone, id = True, id[1:]
        out.append(ShimProcess(pid, ns, id, gone or not os.path.isdir(cwd)))
    return out


# --- checking ------------------------------------------------------------------------------


class _Checker:
    def __init__(self, root: Path, state: Path, verify_digests: bool, now: float, running: bool,
                 mountinfo: str, proc: str) -> None:
        self.root, self.state = root, state
        self.verify_digests = verify_digests
        self.now = now
        self.running = running
        self.mountinfo, self.proc = mountinfo, proc
        self.problems: set[Problem] = set()
        self.checked: dict[str, int] = {}
        self.content_root = root / CONTENT_DIR
        self.meta, self.garbage = _load_metadata(root, now)
        self.snapshotters = _load_snapshotters(root)
        self._sizes: dict[str, int | None] = {}

    def add(self, ns: str, kind: str, id: str, problem: str, fix: str = "") -> None:
        self.problems.add(Problem(ns or "-", kind, id, problem, fix))

    def count(self, kind: str, n: int = 1) -> None:
        self.checked[kind] = self.checked.get(kind, 0) + n

    # --- content

    def blob_path(self, digest: str) -> Path:
        algo, _, hexpart = digest.partition(":")
        return self.content_root / "blobs" / algo / hexpart

    def blob_size(self, digest: str) -> int | None:
        """Size of the blob file, or None when it is missing."""
        if digest not in self._sizes:
            try:
                self._sizes[digest] = os.stat(self.blob_path(digest)).st_size
            except (OSError, ValueError):
                self._sizes[digest] = None
        return self._sizes[digest]

    def blob_json(self, digest: str) -> dict | None:
        size = self.blob_size(digest)
        if size is None or size > _JSON_LIMIT:
            return None
        try:
            doc = json.loads(self.blob_path(digest).read_bytes())
        except (OSError, ValueError):
            return None
        return doc if isinstance(doc, dict) else None

    def check_content(self) -> None:
        for ns, meta in sorted(self.meta.items()):
            for digest, record in sorted(meta.blobs.items()):
                self.count("blobs")
                size = self.blob_size(digest)
                where = self.blob_path(digest)
                fix = f"{_cmd('pyctr', '-n', ns, 'content', 'rm', digest)}, then pull what needs it again"
                if size is None:
                    self.add(ns, "content", digest, f"recorded but its file {where} is missing", fix)
                elif record.get("size") not in (None, size):
                    self.add(ns, "content", digest, f"recorded as {record['size']} bytes but {where} has {size}", fix)
                elif self.verify_digests:
                    actual = _hash_file(where, digest.partition(":")[0])
                    if actual is not None and actual != digest:
                        self.add(ns, "content", digest, f"{where} holds data of digest {actual}", fix)

    def check_unrecorded_blobs(self) -> None:
        """Blob files no namespace records: the content sweeper
        (:meth:`pycontainerd.metadata.content.ContentStore.sweep`) deletes every blob no
        namespace references at each collection, so they are garbage. A commit renames its
        blob into place just before its record is committed: while the daemon runs, the
        metadata is read again and only what is still unrecorded is reported."""
        recorded = {d for meta in self.meta.values() for d in meta.blobs}
        unrecorded = []
        for digest in _blob_files(self.content_root):
            self.count("blob files")
            if digest not in recorded:
                unrecorded.append(digest)
        if unrecorded and self.running:
            again, _ = _load_metadata(self.root, self.now)
            recorded |= {d for meta in again.values() for d in meta.blobs}
        for digest in unrecorded:
            if digest not in recorded:
                self.add("-", "content", digest, f"blob file {self.blob_path(digest)} is recorded by no namespace "
                         "(garbage not collected)", "it is removed at the next garbage collection (or daemon restart)")

    def check_images(self) -> None:
        for ns, meta in sorted(self.meta.items()):
            for name, record in sorted(meta.images.items()):
                self.count("images")
                target = record.get("target") or {}
                digest = target.get("digest", "")
                fix = (f"{_cmd('pyctr', '-n', ns, 'images', 'pull', name)} "
                       f"(or {_cmd('pyctr', '-n', ns, 'images', 'rm', name)})")

                def refetch(d: str) -> str:
                    # the namespace's record stays: pull would find the blob "present" and
                    # fetch nothing, so the record goes first
                    return (f"{_cmd('pyctr', '-n', ns, 'content', 'rm', d)}, then "
                            f"{_cmd('pyctr', '-n', ns, 'images', 'pull', name)}")
                if not digest:
                    self.add(ns, "image", name, "has no target digest", fix)
                    continue
                want_sizes: dict[str, int] = {digest: int(target.get("size") or 0)}
                roles = {digest: "target"}
                seen: set[str] = set()
                queue = [digest]
                while queue:
                    d = queue.pop()
                    if d in seen:
                        continue
                    seen.add(d)
                    blob = meta.blobs.get(d)
                    role = roles.get(d, "blob")
                    if blob is None:
                        self.add(ns, "image", name, f"{role} {d} is not in the namespace's content store", fix)
                        continue
                    size = self.blob_size(d)
                    if size is None:
                        self.add(ns, "image", name, f"{role} {d} is missing from {self.blob_path(d).parent}",
                                 refetch(d))
                        continue
                    if want_sizes.get(d) and want_sizes[d] != size:
                        self.add(ns, "image", name,
                                 f"{role} {d} is {size} bytes, its descriptor says {want_sizes[d]}", refetch(d))
                    for lkey, value in sorted((blob.get("labels") or {}).items()):
                        refs = list(label_refs(ns, {lkey: value}))
                        if refs and refs[0][0] == "content":
                            roles.setdefault(value, lkey.rsplit("gc.ref.content", 1)[-1].lstrip(".") or "blob")
                            queue.append(value)
                    doc = self.blob_json(d)
                    if doc is not None:
                        for child in _descriptors(doc):
                            if child.get("digest") in roles and isinstance(child.get("size"), int):
                                want_sizes.setdefault(child["digest"], child["size"])

    def check_garbage(self) -> None:
        """What nothing keeps any more but is still there: the collector runs at start-up
        and after every delete, so this is garbage it failed to remove. (Ingests are
        checked on their own.)"""
        fix = "restart the daemon or delete any object to trigger garbage collection"
        for kind, ns, ident in self.garbage:
            if kind == "content":
                self.add(ns, "content", str(ident), "nothing references it (garbage not collected)", fix)
            elif kind == "snapshots":
                sname, key = ident
                self.add(ns, "snapshot", key, f"nothing references it in {sname} (garbage not collected)", fix)
            elif kind == "leases":
                self.add(ns, "lease", str(ident), "expired but not collected", fix)

    # --- snapshots

    def check_snapshots(self) -> None:
        referenced: dict[str, set[str]] = {name: set() for name in self.snapshotters}
        for ns, meta in sorted(self.meta.items()):
            for (sname, key), record in sorted(meta.snapshots.items()):
                self.count("snapshots")
                sn = self.snapshotters.get(sname)
                bkey = record.get("name", "")
                fix = _cmd("pyctr", "-n", ns, "snapshots", "--snapshotter", sname, "rm", key)
                if sn is None:
                    self.add(ns, "snapshot", key, f"recorded for snapshotter {sname}, which has no store under "
                             f"{self.root}", fix)
                    continue
                referenced[sname].add(bkey)
                if bkey not in sn.records:
                    self.add(ns, "snapshot", key, f"names {sname} snapshot {bkey!r}, which does not exist", fix)
                parent = record.get("parent")
                if parent and (sname, parent) not in meta.snapshots:
                    self.add(ns, "snapshot", key, f"its parent {parent!r} has no record in the namespace", fix)
        for sname, sn in sorted(self.snapshotters.items()):
            ids = {}
            for bkey, record in sorted(sn.records.items()):
                self.count("backend snapshots")
                sid = str(record.get("id"))
                ids[sid] = bkey
                if sn.needs_dir(record) and sid not in sn.dirs:
                    self.add("-", "snapshot", f"{sname}/{bkey}",
                             f"its directory {sn.root / 'snapshots' / sid} is missing",
                             "remove the snapshots that use it, then pull the image again")
            # backend snapshots no namespace names, nor as the parent of one it names
            keep = set(referenced.get(sname, ()))
            stack = list(keep)
            while stack:
                parent = (sn.records.get(stack.pop()) or {}).get("parent") or ""
                if parent and parent not in keep:
                    keep.add(parent)
                    stack.append(parent)
            for bkey in sorted(set(sn.records) - keep):
                self.add("-", "snapshot", f"{sname}/{bkey}",
                         "no namespace references it (garbage the collector should have removed)",
                         "restart the daemon or delete any object to trigger garbage collection")
            for d in sorted(sn.dirs - set(ids)):
                if self.running and (d.startswith("new-") or d.startswith("rm-")):
                    continue  # being created or removed right now
                self.add("-", "snapshot", str(sn.root / "snapshots" / d),
                         "directory on disk that no snapshot record names",
                         "restart the daemon (its start-up garbage collection removes it)")

    def check_containers(self) -> None:
        for ns, meta in sorted(self.meta.items()):
            for cid, record in sorted(meta.containers.items()):
                self.count("containers")
                sname, key = record.get("snapshotter", ""), record.get("snapshot_key", "")
                if not key:
                    continue
                fix = f"{_cmd('pyctr', '-n', ns, 'containers', 'rm', cid)} and create it again"
                srecord = meta.snapshots.get((sname, key))
                if srecord is None:
                    self.add(ns, "container", cid, f"its snapshot {key!r} ({sname}) has no record", fix)
                    continue
                sn = self.snapshotters.get(sname)
                if sn is None or srecord.get("name") not in sn.records:
                    self.add(ns, "container", cid, f"its snapshot {key!r} is missing from snapshotter {sname}", fix)

    # --- leases and ingests

    def check_leases(self) -> None:
        for ns, meta in sorted(self.meta.items()):
            for lease_id in sorted(set(meta.leases) | set(meta.lease_resources)):
                self.count("leases")
                fix = f"{_cmd('pyctr', '-n', ns, 'leases', 'rm', lease_id)} (and redo the work it was for)"
                if lease_id not in meta.leases:
                    self.add(ns, "lease", lease_id, "resources are recorded for a lease that does not exist", fix)
                for kind, ident in sorted(meta.lease_resources.get(lease_id, ()), key=repr):
                    if kind == "content":
                        if ident not in meta.blobs:
                            self.add(ns, "lease", lease_id, f"holds content {ident}, which is not in the namespace",
                                     fix)
                        elif self.blob_size(ident) is None:
                            self.add(ns, "lease", lease_id, f"holds content {ident}, whose file is missing", fix)
                    elif kind == "snapshots":
                        sname, key = ident
                        if (sname, key) not in meta.snapshots:
                            self.add(ns, "lease", lease_id, f"holds snapshot {key!r} ({sname}), which does not exist",
                                     fix)
                    # an ingest the lease holds may be gone rightly: a write of the same ref
                    # committed (or aborted) under another lease releases only that lease's hold

    def check_ingests(self) -> None:
        recorded: dict[str, tuple[str, str, dict]] = {}
        for ns, meta in sorted(self.meta.items()):
            holders: dict[str, list[str]] = {}
            for lease_id, resources in meta.lease_resources.items():
                for kind, ident in resources:
                    if kind == "ingests":
                        holders.setdefault(ident, []).append(lease_id)
            for ref, record in sorted(meta.ingests.items()):
                self.count("ingests")
                if record.get("ref"):
                    recorded[record["ref"]] = (ns, ref, record)
                fix = f"abort the write (Content.Abort of ref {ref!r} in namespace {ns}); the collector then deletes it"
                expire_at = record.get("expire_at")
                live = [lid for lid in holders.get(ref, ()) if lid in meta.leases
                        and not _lease_expired(meta.leases[lid], self.now)]
                if expire_at:
                    if expire_at < self.now * 1e9 and not live:
                        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expire_at / 1e9))
                        self.add(ns, "ingest", ref, f"expired at {when} but was not collected", fix)
                elif not live:
                    self.add(ns, "ingest", ref, "outlived its lease: no live lease holds it and it has no expiry, so "
                             "garbage collection never removes it", fix)
        ingest_root = self.content_root / "ingest"
        try:
            entries = sorted(os.listdir(ingest_root))
        except FileNotFoundError:
            entries = []
        for entry in entries:
            path = ingest_root / entry
            if not path.is_dir():
                continue
            self.count("ingest dirs")
            try:
                bref = (path / "ref").read_text()
            except OSError:
                self.add("-", "ingest", str(path), "ingest directory without a readable ref file (a write "
                         "interrupted as it began)",
                         f"restart the daemon (it removes these) or {_cmd('rm', '-r', path)}")
                continue
            if bref not in recorded:
                ns = bref.split("/", 1)[0] if bref.count("/") >= 2 else "-"
                self.add(ns, "ingest", bref, f"its data {path} is recorded by no namespace (an abandoned write)",
                         "restart the daemon or delete any object to trigger garbage collection")

    # --- runtime: mounts, shims, bundles

    def shim_root(self, s: ShimProcess) -> str | None:
        """The daemon root a shim's bundle belongs to (its ``work`` link points into
        ``<root>/io.containerd.runtime.v2.task``); None when that cannot be told."""
        try:
            work = os.readlink(self.state / TASK_DIR / s.namespace / s.id / "work")
        except OSError:
            return None
        parts = os.path.normpath(work).split(os.sep)
        if len(parts) >= 4 and parts[-3] == TASK_DIR:
            return os.sep.join(parts[:-3]) or os.sep
        return None

    def orphan_processes(self, ns: str, id: str, rootfs: str) -> list[int]:
        """Processes of the container ``ns``/``id`` still alive: those of its cgroups and
        its init process as runc's state under ``<state>/runc`` records them, the init pid
        its bundle records, and any process whose root or working directory is in
        ``rootfs``."""
        pids: set[int] = set()
        runc_state = self.state / "runc" / ns / id / "state.json"
        try:
            doc = json.loads(runc_state.read_text())
        except (OSError, ValueError):
            doc = {}
        if isinstance(doc, dict):
            for path in sorted((doc.get("cgroup_paths") or {}).values()):
                try:
                    pids.update(int(x) for x in Path(path, "cgroup.procs").read_text().split())
                except (OSError, ValueError, TypeError):
                    continue
            init = doc.get("init_process_pid")
            if isinstance(init, int) and init > 0:
                start = doc.get("init_process_start")
                if start is None or str(start) == _start_time(init, self.proc):
                    pids.add(init)
        try:
            pids.add(int((self.state / TASK_DIR / ns / id / "init.pid").read_text().strip()))
        except (OSError, ValueError):
            pass
        prefix = rootfs.rstrip("/") + "/"
        for entry in os.listdir(self.proc):
            if not entry.isdigit():
                continue
            for link in ("root", "cwd"):
                try:
                    target = os.readlink(f"{self.proc}/{entry}/{link}")
                except OSError:
                    continue
                if target == rootfs or target.startswith(prefix):
                    pids.add(int(entry))
        return sorted(p for p in pids if p > 0 and os.path.exists(f"{self.proc}/{p}"))

    def check_runtime(self) -> None:
        shims = shim_processes(self.state, self.proc)
        self.count("shims", len(shims))
        served = {(s.namespace, s.id) for s in shims if not s.gone}
        recheck = ("run the check again (a task may be starting or stopping); if it persists, stop the daemon and "
                   "check again")
        for s in shims:
            meta = self.meta.get(s.namespace)
            owner = self.shim_root(s)
            if owner is not None and Path(owner) != self.root:
                # the bundle is another daemon's: never advise killing what this check cannot judge
                self.add(s.namespace, "shim", s.id, f"shim pid {s.pid} serves a bundle of the daemon whose root is "
                         f"{owner}, not {self.root}", f"check with the --root that daemon uses: "
                         f"{_cmd('pyctr', 'admin', 'check', '--root', owner, '--state', self.state)}")
            elif s.gone:
                self.add(s.namespace, "shim", s.id, f"shim pid {s.pid} runs for a bundle that was deleted",
                         recheck if self.running else _cmd("kill", "-9", s.pid))
            elif meta is None or s.id not in meta.containers:
                self.add(s.namespace, "shim", s.id, f"shim pid {s.pid} runs for a container that has no record",
                         recheck if self.running
                         else f"{_cmd('kill', '-9', s.pid)}; the daemon removes the bundle on its next start")
        bundles = _bundles(self.state)
        self.count("bundles", len(bundles))
        restart = "restart the daemon (it cleans up bundles whose shim is gone)" if self.running else \
            "start the daemon (it cleans up bundles whose shim is gone)"
        for ns, id in bundles:
            if (ns, id) not in served:
                self.add(ns, "bundle", id, f"no shim serves {self.state / TASK_DIR / ns / id}", restart)
        allowed_prefixes = []
        held: list[str] = []
        if self.running:
            # a layer being applied: the daemon holds the mounted directory open
            held = _open_paths(_lock_owner(self.root), self.proc)
            allowed_prefixes += [str(sn.root) + "/multiple-lowerdir-check" for sn in self.snapshotters.values()]
        applying = str(self.state / DIFFER_DIR) + "/mount-"
        cri_sandboxes = set((self.meta.get(CRI_NAMESPACE) or _Namespace()).containers)
        bases = (str(self.root) + "/", str(self.state) + "/")
        for mp, fstype in mount_points(self.mountinfo):
            if not mp.startswith(bases):
                continue
            self.count("mounts")
            rel_state = mp[len(str(self.state)) + 1:].split("/") if mp.startswith(bases[1]) else []
            task_rootfs = len(rel_state) == 4 and rel_state[0] == TASK_DIR and rel_state[3] == "rootfs"
            if task_rootfs and (rel_state[1], rel_state[2]) in served:
                continue
            if len(rel_state) == 4 and rel_state[:2] == [CRI_DIR, "sandboxes"] and rel_state[2] in cri_sandboxes:
                continue
            if any(mp.startswith(p) for p in allowed_prefixes):
                continue
            if mp.startswith(applying) and any(h == mp or h.startswith(mp + "/") for h in held):
                continue
            if not task_rootfs:
                self.add("-", "mount", mp, f"{fstype} mount that no running task owns", _cmd("umount", mp))
                continue
            # a task's rootfs without its shim: the daemon's cleanup (runc delete --force, then
            # unmount) is the right order; an umount alone would leave its processes running
            ns, id = rel_state[1], rel_state[2]
            orphans = self.orphan_processes(ns, id, mp)
            if orphans:
                names = ", ".join(f"pid {pid} ({_comm(pid, self.proc)})" for pid in orphans)
                self.add(ns, "task", id, f"container processes run without a shim: {names}",
                         f"{restart.split(' (')[0]} (it kills the container and removes its mount and bundle); "
                         "do not umount its rootfs first")
            self.add("-", "mount", mp, f"{fstype} mount that no running task owns"
                     + (" (the container's processes still run in it)" if orphans else ""),
                     f"{restart.split(' (')[0]} (it cleans up the task and unmounts it)")


def _start_time(pid: int, proc: str = "/proc") -> str | None:
    """Field 22 of ``/proc/<pid>/stat`` (start time in clock ticks, as runc records it)."""
    try:
        stat = Path(f"{proc}/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()
    return fields[19] if len(fields) > 19 else None


def _comm(pid: int, proc: str = "/proc") -> str:
    try:
        return Path(f"{proc}/{pid}/comm").read_text().strip() or "?"
    except OSError:
        return "?"


def _blob_files(content_root: Path) -> list[str]:
    """The digest of every blob file the content sweeper walks (what
    :meth:`pycontainerd.content.local.LocalStore.walk_sync` lists: valid digests under
    ``blobs/sha256/``)."""
    try:
        names = sorted(os.listdir(content_root / "blobs" / ALGORITHM))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [f"{ALGORITHM}:{n}" for n in names if digest_mod.is_valid(f"{ALGORITHM}:{n}")]


def _lock_owner(root: Path) -> int:
    """The pid the daemon wrote into its lock file (0 when unreadable)."""
    try:
        return int((root / LOCK_FILE).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def _open_paths(pid: int, proc: str = "/proc") -> list[str]:
    """What the process ``pid`` holds open (its file descriptors' paths)."""
    out = []
    if pid <= 0:
        return out
    try:
        fds = os.listdir(f"{proc}/{pid}/fd")
    except OSError:
        return out
    for fd in fds:
        try:
            out.append(os.readlink(f"{proc}/{pid}/fd/{fd}"))
        except OSError:
            continue
    return out


def _bundles(state: Path) -> list[tuple[str, str]]:
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


def _descriptors(doc: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """The descriptors a manifest or index names: config, layers, manifests."""
    if isinstance(doc.get("config"), dict):
        yield doc["config"]
    for key in ("layers", "manifests"):
        for d in doc.get(key) or ():
            if isinstance(d, dict):
                yield d


def _hash_file(path: Path, algorithm: str) -> str | None:
    try:
        h = hashlib.new(algorithm)
    except ValueError:
        return None
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return f"{algorithm}:{h.hexdigest()}"


def check(root: str | os.PathLike = DEFAULT_ROOT, state: str | os.PathLike = DEFAULT_STATE, *,
          verify_digests: bool = False, now: float | None = None,
          mountinfo: str = "/proc/self/mountinfo", proc: str = "/proc") -> Report:
    """Check the daemon state under ``root`` and ``state`` (the daemon's ``--root`` and
    ``--state``); see the module doc for what is checked.

    Args:
        verify_digests: also hash every blob (reads all content; slow on big stores).
        now: the time (seconds since the epoch) expiries are compared with.
        mountinfo, proc: where mounts and processes are read (tests point them elsewhere).

    Returns:
        a :class:`Report`; ``report.ok`` when nothing is wrong.

    Raises:
        FileNotFoundError: ``root`` does not exist or holds no metadata database (not a
            daemon root), or ``state`` does not exist.
        lmdb.Error: a metadata environment cannot be read.
    """
    root_p, state_p = Path(root).absolute(), Path(state).absolute()
    if not root_p.is_dir():
        raise FileNotFoundError(2, "no such daemon root directory", str(root_p))
    if not (root_p / METADATA_DIR / "data.mdb").is_file():
        raise FileNotFoundError(2, f"not a pycontainerd root (no metadata db at {root_p / METADATA_DIR})")
    if not state_p.is_dir():
        raise FileNotFoundError(2, "no such daemon state directory", str(state_p))
    running = daemon_running(root_p)
    c = _Checker(root_p, state_p, verify_digests, time.time() if now is None else now, running, mountinfo, proc)
    c.check_content()
    c.check_unrecorded_blobs()
    c.check_garbage()
    c.check_images()
    c.check_snapshots()
    c.check_containers()
    c.check_leases()
    c.check_ingests()
    c.check_runtime()
    return Report(str(root_p), str(state_p), running, sorted(c.problems), dict(sorted(c.checked.items())))


__all__ = ["DEFAULT_ROOT", "DEFAULT_STATE", "Problem", "Report", "ShimProcess", "check", "daemon_running",
           "mount_points", "shim_processes"]
