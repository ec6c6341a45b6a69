"""The consistency checker (``pyctr admin check``) on hand-made states: a consistent one,
then one broken thing at a time — each must be reported once, naming the namespace, kind
and object, and nothing else. No root needed: the snapshotter is the native one, mounts
come from a written mountinfo file, shims are plain processes in a bundle directory."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from pycontainerd.admin import check as check_mod
from pycontainerd.admin.check import check
from pycontainerd.cli import cli
from pycontainerd.gc_scheduler import Scheduler
from pycontainerd.metadata import gc
from pycontainerd.metadata.db import MetadataDB
from pycontainerd.metadata.keys import key
from pycontainerd.snapshots.native import NativeSnapshotter

NS = "default"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"


class State:
    """A small consistent daemon state under ``base``: one image (manifest, config, layer)
    unpacked into a native snapshot, a container on it, a lease holding a blob and an
    ingest in progress."""

    def __init__(self, base: Path) -> None:
        self.root = base / "root"
        self.state = base / "state"
        self.state.mkdir(parents=True)
        self.content = self.root / "io.containerd.content.v1.content"
        (self.content / "blobs" / "sha256").mkdir(parents=True)
        (self.content / "ingest").mkdir()
        self.mountinfo = base / "mountinfo"
        self.mountinfo.write_text("22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n")

        self.layer = self.blob(b"layer bytes")
        self.config = self.blob(json.dumps({"rootfs": {"diff_ids": [self.layer[0]]}}).encode())
        self.manifest = self.blob(json.dumps({
            "schemaVersion": 2, "mediaType": MANIFEST_TYPE,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": self.config[0],
                       "size": self.config[1]},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": self.layer[0],
                        "size": self.layer[1]}],
        }).encode())
        self.lease_blob = self.blob(b"held by the lease only")

        sn = NativeSnapshotter(self.root / "io.containerd.snapshotter.v1.native")
        sn.prepare_sync("default/1/extract")
        sn.commit_sync("default/2/sha256:chain", "default/1/extract")
        sn.prepare_sync("default/3/c1", "default/2/sha256:chain")
        sn.close_sync()

        self.bref = f"{NS}/1/pull-ref"
        ingest = self.content / "ingest" / hashlib.sha256(self.bref.encode()).hexdigest()
        ingest.mkdir()
        (ingest / "ref").write_text(self.bref)
        (ingest / "data").write_bytes(b"half")

        db = MetadataDB(self.root / "io.containerd.metadata.v1.lmdb")

        def fill(txn):
            txn.put("namespaces", NS.encode(), {"labels": {}, "created_at": 1})
            txn.put("objects", key(NS, "image", "img:latest"), {
                "target": {"mediaType": MANIFEST_TYPE, "digest": self.manifest[0], "size": self.manifest[1]},
                "labels": {}, "created_at": 1, "updated_at": 1})
            self.record_blob(txn, self.manifest, {"containerd.io/gc.ref.content.config": self.config[0],
                                                  "containerd.io/gc.ref.content.l.0": self.layer[0]})
            self.record_blob(txn, self.config, {"containerd.io/gc.ref.snapshot.native": "sha256:chain"})
            self.record_blob(txn, self.layer)
            self.record_blob(txn, self.lease_blob)
            txn.put("objects", key(NS, "snapshots", "native", "sha256:chain"),
                    {"name": "default/2/sha256:chain", "parent": "", "labels": {}, "created_at": 1, "updated_at": 1})
            txn.put("objects", key(NS, "snapshots", "native", "c1"),
                    {"name": "default/3/c1", "parent": "sha256:chain", "labels": {}, "created_at": 1,
                     "updated_at": 1})
            txn.put("objects", key(NS, "containers", "c1"), {"snapshotter": "native", "snapshot_key": "c1",
                                                             "image": "img:latest", "labels": {}})
            txn.put("objects", key(NS, "leases", "pull"), {"labels": {}, "created_at": 1})
            txn.put("objects", key(NS, "leases", "pull", "content", self.lease_blob[0]), {})
            txn.put("objects", key(NS, "leases", "pull", "ingests", "pull-ref"), {})
            txn.put("objects", key(NS, "content", "ingests", "pull-ref"), {"ref": self.bref})

        db.update_sync(fill)
        db.close()

    def blob(self, data: bytes) -> tuple[str, int]:
        hexd = hashlib.sha256(data).hexdigest()
        (self.content / "blobs" / "sha256" / hexd).write_bytes(data)
        return f"sha256:{hexd}", len(data)

    def record_blob(self, txn, blob: tuple[str, int], labels=None) -> None:
        txn.put("objects", key(NS, "content", "blob", blob[0]),
                {"labels": labels or {}, "size": blob[1], "created_at": 1, "updated_at": 1})

    def blob_path(self, digest: str) -> Path:
        return self.content / "blobs" / "sha256" / digest.split(":")[1]

    def update(self, fn) -> None:
        db = MetadataDB(self.root / "io.containerd.metadata.v1.lmdb")
        try:
            db.update_sync(fn)
        finally:
            db.close()

    def snapshotter(self) -> NativeSnapshotter:
        return NativeSnapshotter(self.root / "io.containerd.snapshotter.v1.native")

    def check(self, **kw):
        return check(self.root, self.state, mountinfo=str(self.mountinfo), **kw)

    def lines(self, **kw) -> list[str]:
        return [p.line() for p in self.check(**kw).problems]


@pytest.fixture
def st(tmp_path) -> State:
    return State(tmp_path)


def test_consistent_state_has_no_problems(st):
    report = st.check()
    assert report.ok and report.problems == [], [p.line() for p in report.problems]
    assert not report.daemon_running
    assert report.checked["images"] == 1 and report.checked["blobs"] == 4
    assert report.checked["containers"] == 1 and report.checked["snapshots"] == 2
    assert report.checked["backend snapshots"] == 2 and report.checked["leases"] == 1
    assert report.checked["ingests"] == 1 and report.checked["ingest dirs"] == 1


def test_missing_layer_is_reported_for_the_image_and_the_blob(st):
    st.blob_path(st.layer[0]).unlink()
    lines = st.lines()
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"default content {st.layer[0]}: recorded but its file ")
    assert lines[1].startswith(f"default image img:latest: l.0 {st.layer[0]} is missing from ")
    assert "pyctr -n default images pull img:latest" in lines[1]


def test_blob_of_the_wrong_size(st):
    path = st.blob_path(st.config[0])
    os.chmod(path, 0o644)
    path.write_bytes(path.read_bytes() + b" ")
    lines = st.lines()
    assert [ln.split(": ", 1)[0] for ln in lines] == [f"default content {st.config[0]}",
                                                      "default image img:latest"], lines
    assert f"recorded as {st.config[1]} bytes but" in lines[0]
    assert f"config {st.config[0]} is {st.config[1] + 1} bytes, its descriptor says {st.config[1]}" in lines[1]


def test_verify_digests_finds_corrupt_data_of_the_right_size(st):
    path = st.blob_path(st.layer[0])
    path.write_bytes(b"LAYER bytes")
    assert st.check().ok
    (line,) = st.lines(verify_digests=True)
    assert line.startswith(f"default content {st.layer[0]}: ") and "holds data of digest sha256:" in line


def test_image_target_not_in_the_namespace(st):
    st.update(lambda txn: txn.delete("objects", key(NS, "content", "blob", st.manifest[0])))
    lines = st.lines()
    assert len(lines) == 4, lines
    # the manifest's file is recorded by no namespace: the content sweeper deletes it
    assert lines.pop(0) == (f"- content {st.manifest[0]}: blob file {st.blob_path(st.manifest[0])} is recorded by "
                            "no namespace (garbage not collected) [fix: it is removed at the next garbage "
                            "collection (or daemon restart)]")
    # what only the manifest referenced is now garbage the collector would remove
    assert sorted(lines[:2]) == sorted(f"default content {d}: nothing references it (garbage not collected) "
                                       "[fix: restart the daemon or delete any object to trigger garbage collection]"
                                       for d in (st.config[0], st.layer[0]))
    assert f"default image img:latest: target {st.manifest[0]} is not in the namespace's content store" in lines[2]


def test_container_whose_snapshot_record_is_gone(st):
    st.update(lambda txn: txn.delete("objects", key(NS, "snapshots", "native", "c1")))
    lines = st.lines()
    # the backend snapshot default/3/c1 is now referenced by nobody
    assert lines[0].startswith("- snapshot native/default/3/c1: no namespace references it")
    assert "default container c1: its snapshot 'c1' (native) has no record" in lines[1]
    assert len(lines) == 2


def test_snapshot_missing_from_the_snapshotter(st):
    sn = st.snapshotter()
    sn.remove_sync("default/3/c1")
    sn.close_sync()
    lines = st.lines()
    assert lines == [
        "default container c1: its snapshot 'c1' is missing from snapshotter native "
        "[fix: pyctr -n default containers rm c1 and create it again]",
        "default snapshot c1: names native snapshot 'default/3/c1', which does not exist "
        "[fix: pyctr -n default snapshots --snapshotter native rm c1]",
    ]


def test_snapshot_directory_without_record_and_record_without_directory(st):
    snaps = st.root / "io.containerd.snapshotter.v1.native" / "snapshots"
    (snaps / "99").mkdir()
    (snaps / "new-123").mkdir()
    shutil.rmtree(snaps / "2")  # the id of default/3/c1
    lines = st.lines()
    assert len(lines) == 3, lines
    assert lines[0].startswith(f"- snapshot {snaps / '99'}: directory on disk that no snapshot record names")
    assert lines[1].startswith(f"- snapshot {snaps / 'new-123'}: directory on disk")
    assert lines[2] == (f"- snapshot native/default/3/c1: its directory {snaps / '2'} is missing "
                        "[fix: remove the snapshots that use it, then pull the image again]")


def test_transient_states_are_accepted_while_the_daemon_runs(st):
    snaps = st.root / "io.containerd.snapshotter.v1.native" / "snapshots"
    (snaps / "new-123").mkdir()
    (snaps / "rm-7").mkdir()
    apply_mount = st.state / "io.containerd.differ.v1.walking" / "mount-abc"
    with st.mountinfo.open("a") as f:
        f.write(f"90 22 0:50 / {apply_mount} rw - overlay overlay rw\n")
    apply_mount.mkdir(parents=True)
    assert len(st.lines()) == 3  # nothing in progress when no daemon runs: left-overs
    fd = os.open(st.root / "pycontainerd.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what a running daemon holds …
        os.write(fd, f"{os.getpid()}\n".encode())
        # … while it applies a layer on the mount it holds open
        (line,) = st.lines()  # not held open: left by a daemon that died while applying
        assert line == f"- mount {apply_mount}: overlay mount that no running task owns [fix: umount {apply_mount}]"
        held = os.open(apply_mount, os.O_RDONLY | os.O_DIRECTORY)
        try:
            report = st.check()
        finally:
            os.close(held)
        assert report.daemon_running and report.ok, [p.line() for p in report.problems]
    finally:
        os.close(fd)


def test_garbage_the_collector_should_have_removed(st):
    def break_it(txn):
        txn.put("objects", key(NS, "snapshots", "native", "loose"),
                {"name": "default/2/sha256:chain", "parent": "", "labels": {}, "created_at": 1, "updated_at": 1})
        txn.put("objects", key(NS, "leases", "old"), {"labels": {"containerd.io/gc.expire": "2001-01-01T00:00:00Z"},
                                                      "created_at": 1})

    st.update(break_it)
    assert [ln.split(" [fix")[0] for ln in st.lines()] == [
        "default lease old: expired but not collected",
        "default snapshot loose: nothing references it in native (garbage not collected)",
    ]


def test_lease_resources_that_do_not_exist(st):
    def break_it(txn):
        txn.put("objects", key(NS, "leases", "pull", "snapshots", "native", "gone"), {})
        txn.put("objects", key(NS, "leases", "pull", "content", "sha256:" + "0" * 64), {})
        txn.delete("objects", key(NS, "content", "ingests", "pull-ref"))

    st.update(break_it)
    lines = st.lines()
    assert [ln.split(" [fix")[0] for ln in lines] == [
        "default ingest " + st.bref + ": its data " + str(st.content / "ingest" /
                                                      hashlib.sha256(st.bref.encode()).hexdigest())
        + " is recorded by no namespace (an abandoned write)",
        "default lease pull: holds content sha256:" + "0" * 64 + ", which is not in the namespace",
        "default lease pull: holds snapshot 'gone' (native), which does not exist",
    ]
    assert lines[1].endswith("[fix: pyctr -n default leases rm pull (and redo the work it was for)]")


def test_ingests_outliving_their_lease_or_their_expiry(st):
    def break_it(txn):
        txn.delete_prefix("objects", key(NS, "leases", "pull"))
        txn.put("objects", key(NS, "content", "ingests", "old"), {"ref": f"{NS}/1/old", "expire_at": 5})
        txn.put("objects", key(NS, "content", "ingests", "fresh"),
                {"ref": f"{NS}/1/fresh", "expire_at": time.time_ns() + 10**12})

    st.update(break_it)
    lines = st.lines()
    assert len(lines) == 3, lines
    assert lines[0].startswith(f"default content {st.lease_blob[0]}: nothing references it")  # only the lease did
    assert lines[1].startswith("default ingest old: expired at 1970-01-01T00:00:00Z but was not collected")
    assert lines[2].startswith("default ingest pull-ref: outlived its lease")


def test_gc_collects_an_ingest_whose_lease_is_gone(st):
    """containerd's rule (metadata/gc.go): an ingest without an expiry is kept only by a
    lease; once the lease is gone the collector removes it (and the sweeper its data)."""
    st.update(lambda txn: txn.delete_prefix("objects", key(NS, "leases", "pull")))
    db = MetadataDB(st.root / "io.containerd.metadata.v1.lmdb")
    try:
        result = db.update_sync(lambda txn: gc.collect(txn))
    finally:
        db.close()
    assert ("ingests", NS, "pull-ref") in result.removed
    assert not any("ingest pull-ref" in ln for ln in st.lines())


def test_leaked_mounts_are_reported_and_a_running_tasks_rootfs_is_not(st):
    bundle = st.state / "io.containerd.runtime.v2.task" / NS / "c1"
    (bundle / "rootfs").mkdir(parents=True)
    shim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], cwd=bundle,
                            start_new_session=True)
    stray = f"{st.root}/stray\\040mount"
    try:
        with st.mountinfo.open("a") as f:
            f.write(f"91 22 0:51 / {bundle / 'rootfs'} rw - overlay overlay rw\n")
            f.write(f"92 22 0:52 / {stray} rw - tmpfs tmpfs rw\n")
        lines = st.lines()
        assert lines == [f"- mount {st.root / 'stray mount'}: tmpfs mount that no running task owns "
                         f"[fix: umount '{st.root / 'stray mount'}']"]
        report = st.check()
        assert report.checked["shims"] == 1 and report.checked["bundles"] == 1 and report.checked["mounts"] == 2
    finally:
        shim.kill()
        shim.wait()
    # the shim is gone: its bundle and its rootfs mount are now leaks
    lines = st.lines()
    assert lines[1].startswith(f"- mount {bundle / 'rootfs'}: overlay mount that no running task owns")
    assert lines[2].startswith(f"default bundle c1: no shim serves {bundle}")


def test_orphan_shims(st):
    base = st.state / "io.containerd.runtime.v2.task" / NS
    (base / "nocontainer").mkdir(parents=True)
    (base / "deleted").mkdir()
    procs = [subprocess.Popen(["sleep", "60"], cwd=base / name, start_new_session=True)
             for name in ("nocontainer", "deleted")]
    try:
        shutil.rmtree(base / "deleted")
        lines = st.lines()
        assert lines == [
            f"default shim deleted: shim pid {procs[1].pid} runs for a bundle that was deleted "
            f"[fix: kill -9 {procs[1].pid}]",
            f"default shim nocontainer: shim pid {procs[0].pid} runs for a container that has no record "
            f"[fix: kill -9 {procs[0].pid}; the daemon removes the bundle on its next start]",
        ]
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_cli_table_json_and_exit_codes(st):
    runner = CliRunner()
    args = ["admin", "check", "--root", str(st.root), "--state", str(st.state)]
    ok = runner.invoke(cli, args)
    assert ok.exit_code == 0, ok.output
    assert ok.output.startswith("consistent (daemon not running; checked ")
    st.blob_path(st.layer[0]).unlink()
    bad = runner.invoke(cli, args)
    assert bad.exit_code == 1
    out = bad.output.splitlines()
    assert out[0].startswith(f"default content {st.layer[0]}: ") and out[1].startswith("default image img:latest: ")
    assert out[2].startswith("2 problem(s) (daemon not running; checked ")
    doc = json.loads(runner.invoke(cli, args + ["--format", "json"]).output)
    assert doc["ok"] is False and doc["daemon_running"] is False
    assert [(p["namespace"], p["kind"], p["id"]) for p in doc["problems"]] == [
        ("default", "content", st.layer[0]), ("default", "image", "img:latest")]
    assert all(p["problem"] and p["fix"] for p in doc["problems"])
    assert doc["checked"]["blob_files"] > 0 and all(" " not in k for k in doc["checked"])  # docs/pyctr.md: snake_case
    missing = runner.invoke(cli, ["admin", "check", "--root", str(st.root / "nope")])
    assert missing.exit_code == 2 and "cannot read the daemon state" in missing.output


_WRITER = """
import sys
from pycontainerd.metadata.db import MetadataDB
from pycontainerd.metadata.keys import key
db = MetadataDB(sys.argv[1])
print("ready", flush=True)
for i in range(int(sys.argv[2])):
    db.update_sync(lambda txn: txn.put("objects", key("default", "leases", f"w{i % 7}"),
                                       {"labels": {}, "created_at": i}))
sys.stdin.readline()
db.close()
"""


def test_reads_while_a_writer_works_and_changes_nothing(st):
    data = st.root / "io.containerd.metadata.v1.lmdb" / "data.mdb"
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(data.parent), "300"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline() == "ready\n"
        for _ in range(5):  # concurrent with the writer's transactions
            report = st.check()
            assert all(p.kind == "lease" or p.kind == "ingest" for p in report.problems) or report.ok
        writer.stdin.write("\n")
        writer.stdin.flush()
        assert writer.wait(timeout=60) == 0
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    before = hashlib.sha256(data.read_bytes()).hexdigest()
    report = st.check()
    assert report.checked["leases"] == 8 and report.ok
    assert hashlib.sha256(data.read_bytes()).hexdigest() == before


def test_daemon_running_reads_proc_locks_without_taking_the_lock(tmp_path):
    assert not check_mod.daemon_running(tmp_path)
    fd = os.open(tmp_path / "pycontainerd.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        assert not check_mod.daemon_running(tmp_path)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert check_mod.daemon_running(tmp_path)
    finally:
        os.close(fd)


async def test_commit_interrupted_by_a_crash_is_undone_by_the_collector(tmp_path):
    """kill -9 between the backend's commit and the namespaced store's transaction left the
    record ``k`` naming a backend key the backend had renamed (found by the fault tests).
    The collector undoes the backend's commit: ``k`` is active again and can be committed."""
    from pycontainerd import namespaces
    from pycontainerd.metadata.snapshots import SnapshotStore

    db = MetadataDB(tmp_path / "meta")
    backend = NativeSnapshotter(tmp_path / "native")
    try:
        store = SnapshotStore(db, "native", backend)
        sched = Scheduler(db, {"snapshots/native": store.sweep})
        with namespaces.using(NS):
            await store.prepare("k", labels={"containerd.io/gc.root": "x"})  # as a lease would
            (Path((await store.mounts("k"))[0].source) / "file").write_text("data")
            bkey = db.view(lambda txn: txn.get("objects", key(NS, "snapshots", "native", "k")))["name"]
            backend.commit_sync(f"{NS}/99/layer", bkey)  # … and the daemon dies here
            await sched.collect()
            assert backend.stat_sync(bkey).kind.name == "ACTIVE"
            assert (Path((await store.mounts("k"))[0].source) / "file").read_text() == "data"
            await store.commit("layer", "k")
            assert [i.name for i in await store.walk()] == ["layer"]
    finally:
        backend.close_sync()
        db.close()


# --- what a new user's first runs found ---------------------------------------------------


def test_a_directory_that_is_not_a_daemon_root_or_a_missing_state_is_an_error(st, tmp_path):
    runner = CliRunner()
    other = tmp_path / "just a dir"
    other.mkdir()
    res = runner.invoke(cli, ["admin", "check", "--root", str(other), "--state", str(st.state)])
    assert res.exit_code == 2
    assert (f"not a pycontainerd root (no metadata db at {other / 'io.containerd.metadata.v1.lmdb'})"
            in res.output), res.output
    with pytest.raises(FileNotFoundError, match="not a pycontainerd root"):
        check(other, st.state)
    res = runner.invoke(cli, ["admin", "check", "--root", str(st.root), "--state", str(tmp_path / "nostate")])
    assert res.exit_code == 2
    assert f"no such daemon state directory: {tmp_path / 'nostate'}" in res.output, res.output


def test_a_shim_of_another_root_is_never_to_be_killed(st, tmp_path):
    bundle = st.state / "io.containerd.runtime.v2.task" / NS / "theirs"
    bundle.mkdir(parents=True)
    (bundle / "work").symlink_to(tmp_path / "elsewhere" / "io.containerd.runtime.v2.task" / NS / "theirs")
    shim = subprocess.Popen(["sleep", "60"], cwd=bundle, start_new_session=True)
    try:
        (line,) = st.lines()
        assert line.startswith(f"default shim theirs: shim pid {shim.pid} serves a bundle of the daemon whose root "
                               f"is {tmp_path / 'elsewhere'}, not {st.root} [fix: check with the --root")
        assert "kill" not in line
    finally:
        shim.kill()
        shim.wait()


def test_no_kill_advice_for_a_shim_while_the_daemon_runs(st):
    bundle = st.state / "io.containerd.runtime.v2.task" / NS / "nocontainer"
    bundle.mkdir(parents=True)
    shim = subprocess.Popen(["sleep", "60"], cwd=bundle, start_new_session=True)
    fd = os.open(st.root / "pycontainerd.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        (line,) = st.lines()
        assert line.startswith(f"default shim nocontainer: shim pid {shim.pid} runs for a container that has no "
                               "record [fix: run the check again"), line
        assert "kill" not in line
    finally:
        os.close(fd)
        shim.kill()
        shim.wait()


def _start_ticks(pid: int) -> str:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rfind(")") + 2:].split()[19]


def test_a_containers_process_left_by_a_killed_shim_is_reported_not_unmounted(st, tmp_path):
    """kill -9 of the daemon and a shim: the container's process still runs in its rootfs.
    It is found through runc's state (init pid, cgroup.procs) and through its cwd; the advice
    is the daemon's clean-up, never a bare umount under a running process."""
    bundle = st.state / "io.containerd.runtime.v2.task" / NS / "c1"
    rootfs = bundle / "rootfs"
    rootfs.mkdir(parents=True)
    with st.mountinfo.open("a") as f:
        f.write(f"91 22 0:51 / {rootfs} rw - overlay overlay rw\n")
    in_rootfs = subprocess.Popen(["sleep", "60"], cwd=rootfs)
    init = subprocess.Popen(["sleep", "61"])
    in_cgroup = subprocess.Popen(["sleep", "62"])
    try:
        cgroup = tmp_path / "cgroup" / "pids" / "default" / "c1"
        cgroup.mkdir(parents=True)
        (cgroup / "cgroup.procs").write_text(f"{init.pid}\n{in_cgroup.pid}\n")
        runc_state = st.state / "runc" / NS / "c1"
        runc_state.mkdir(parents=True)
        (runc_state / "state.json").write_text(json.dumps({
            "init_process_pid": init.pid, "init_process_start": _start_ticks(init.pid),
            "cgroup_paths": {"pids": str(cgroup)}}))
        lines = st.lines()
        assert len(lines) == 3, lines
        pids = sorted([in_rootfs.pid, init.pid, in_cgroup.pid])
        assert lines[0] == (f"- mount {rootfs}: overlay mount that no running task owns (the container's processes "
                            "still run in it) [fix: start the daemon (it cleans up the task and unmounts it)]")
        assert lines[1].startswith(f"default bundle c1: no shim serves {bundle}")
        assert lines[2] == ("default task c1: container processes run without a shim: "
                            + ", ".join(f"pid {p} (sleep)" for p in pids)
                            + " [fix: start the daemon (it kills the container and removes its mount and bundle); "
                              "do not umount its rootfs first]")
        assert "umount" not in lines[0]
        # a recycled init pid (another start time) is not the container's
        (runc_state / "state.json").write_text(json.dumps({"init_process_pid": init.pid,
                                                           "init_process_start": "1"}))
        (task_line,) = [ln for ln in st.lines() if ln.startswith("default task c1:")]
        assert f"pid {in_rootfs.pid} (sleep)" in task_line and f"pid {init.pid} " not in task_line
    finally:
        for p in (in_rootfs, init, in_cgroup):
            p.kill()
            p.wait()
    # nothing runs in it any more: still the daemon's clean-up, and no task line
    lines = st.lines()
    assert [ln.split(":")[0] for ln in lines] == [f"- mount {rootfs}", "default bundle c1"], lines


def test_an_image_missing_a_recorded_blob_says_to_remove_the_record_before_pulling(st):
    st.blob_path(st.layer[0]).unlink()
    content_line, image_line = st.lines()
    fix = f"pyctr -n default content rm {st.layer[0]}, then "
    assert f"[fix: {fix}pull what needs it again]" in content_line
    assert image_line.endswith(f"[fix: {fix}pyctr -n default images pull img:latest]"), image_line


def test_fix_commands_are_shell_quoted(st):
    def add_image(txn):
        txn.put("objects", key(NS, "image", "Bad Ref"), {
            "target": {"mediaType": MANIFEST_TYPE, "digest": "sha256:" + "1" * 64, "size": 2},
            "labels": {}, "created_at": 1, "updated_at": 1})

    st.update(add_image)
    (line,) = st.lines()
    assert line.endswith("[fix: pyctr -n default images pull 'Bad Ref' (or pyctr -n default images rm 'Bad Ref')]")


def test_a_blob_file_no_namespace_records_is_garbage_the_sweeper_removes(st):
    from pycontainerd.content.local import LocalStore
    from pycontainerd.metadata.content import ContentStore

    stray = st.blob(b"on disk, recorded nowhere")
    (st.content / "blobs" / "sha256" / "not-a-digest").write_bytes(b"x")  # the sweeper skips such names too
    (line,) = st.lines()
    assert line == (f"- content {stray[0]}: blob file {st.blob_path(stray[0])} is recorded by no namespace "
                    "(garbage not collected) [fix: it is removed at the next garbage collection (or daemon restart)]")
    # the checker agrees with the collector: its content sweeper deletes exactly that file
    db = MetadataDB(st.root / "io.containerd.metadata.v1.lmdb")
    try:
        store = ContentStore(db, LocalStore(st.content))
        db.update_sync(lambda txn: gc.collect(txn, {"content": store.sweep}))
    finally:
        db.close()
    assert not st.blob_path(stray[0]).exists() and st.blob_path(st.layer[0]).exists()
    assert st.check().ok
