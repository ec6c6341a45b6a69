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

import json
import os
import shlex
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..metadata.gc import label_refs
from .loaders import (
    CONTENT_DIR,
    CRI_DIR,
    CRI_NAMESPACE,
    DEFAULT_ROOT,
    DEFAULT_STATE,
    DIFFER_DIR,
    METADATA_DIR,
    TASK_DIR,
    NamespaceRows,
    blob_files,
    descriptors,
    hash_file,
    lease_expired,
    load_metadata,
    load_snapshotters,
    task_bundles,
)
from .probes import (
    ShimProcess,
    comm,
    daemon_running,
    lock_owner,
    mount_points,
    open_paths,
    shim_processes,
    start_time,
)

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
        self.meta, self.garbage = load_metadata(root, now)
        self.snapshotters = load_snapshotters(root)
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
                    actual = hash_file(where, digest.partition(":")[0])
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
        for digest in blob_files(self.content_root):
            self.count("blob files")
            if digest not in recorded:
                unrecorded.append(digest)
        if unrecorded and self.running:
            again, _ = load_metadata(self.root, self.now)
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
                        for child in descriptors(doc):
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
                        and not lease_expired(meta.leases[lid], self.now)]
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
                if start is None or str(start) == start_time(init, self.proc):
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
        bundles = task_bundles(self.state)
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
            held = open_paths(lock_owner(self.root), self.proc)
            allowed_prefixes += [str(sn.root) + "/multiple-lowerdir-check" for sn in self.snapshotters.values()]
        applying = str(self.state / DIFFER_DIR) + "/mount-"
        cri_sandboxes = set((self.meta.get(CRI_NAMESPACE) or NamespaceRows()).containers)
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
                names = ", ".join(f"pid {pid} ({comm(pid, self.proc)})" for pid in orphans)
                self.add(ns, "task", id, f"container processes run without a shim: {names}",
                         f"{restart.split(' (')[0]} (it kills the container and removes its mount and bundle); "
                         "do not umount its rootfs first")
            self.add("-", "mount", mp, f"{fstype} mount that no running task owns"
                     + (" (the container's processes still run in it)" if orphans else ""),
                     f"{restart.split(' (')[0]} (it cleans up the task and unmounts it)")


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
