"""Debian's ctr (containerd 1.6.20's client) drives the Snapshots service: prepare, ls,
tree, info, label, usage, mounts, commit, view, rm on the overlayfs and native
snapshotters; the mount commands ctr prints are run with mount(8) and the trees checked;
namespaces are isolated and a namespace holding snapshots cannot be deleted.

``ctr snapshots prepare`` and ``commit`` label what they create ``containerd.io/gc.root``;
``view`` does not, so a view is collectable as soon as a garbage collection runs (after any
successful ``rm``), exactly as in containerd — the tests use views before removing anything.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from pycontainerd.mount import unmount_all
from tests.interop.test_ctr_foundation import ctr

pytestmark = [pytest.mark.interop, pytest.mark.root]

OVERLAY_DIR = "io.containerd.snapshotter.v1.overlayfs"
NATIVE_DIR = "io.containerd.snapshotter.v1.native"


def mounts_below(path: Path) -> list[str]:
    real = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4].encode().decode("unicode_escape") for line in f]
    return [p for p in points if p == real or p.startswith(real + "/")]


@pytest.fixture
def targets(tmp_path, daemon):
    """A directory for mount points; everything mounted below it (or below the daemon's
    dirs) is unmounted at the end, and the test fails if anything was left."""
    base = tmp_path / "targets"
    base.mkdir()
    yield base
    leaked = mounts_below(base) + mounts_below(daemon.base)
    for point in reversed(leaked):
        with contextlib.suppress(OSError):
            unmount_all(point)
    if not mounts_below(base):
        shutil.rmtree(base, ignore_errors=True)
    assert not leaked, f"mounts left behind: {leaked}"


@contextlib.contextmanager
def mount_printed(command_line: str, target: Path):
    """Run the ``mount -t … <target> -o …`` line(s) ctr printed; always unmount."""
    target.mkdir(exist_ok=True)
    lines = [line for line in command_line.splitlines() if line.strip()]
    assert lines and all(line.startswith("mount -t ") for line in lines), command_line
    try:
        for line in lines:
            argv = shlex.split(line)
            assert argv[4] == str(target)
            subprocess.run(argv, check=True, capture_output=True, text=True)
        yield target
    finally:
        unmount_all(str(target))


def sn(ctr_bin, daemon, *args, snapshotter=None, ns=None, check=True):
    flags = ("--snapshotter", snapshotter) if snapshotter else ()
    return ctr(ctr_bin, daemon, "snapshots", *flags, *args, ns=ns, check=check)


def rows(out: str) -> dict[str, list[str]]:
    lines = out.strip().splitlines()
    header, body = lines[0].split(), lines[1:]
    assert header[0] == "KEY"
    return {line.split()[0]: line.split()[1:] for line in body}


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_overlayfs_lifecycle_with_ctr(ctr_bin, daemon, targets):
    sn(ctr_bin, daemon, "prepare", "base")
    line = sn(ctr_bin, daemon, "mounts", str(targets / "base"), "base").stdout
    assert line.startswith("mount -t bind ") and line.rstrip().endswith("-o rw,rbind")
    with mount_printed(line, targets / "base") as t:
        (t / "base.txt").write_text("from base\n")
        (t / "etc").mkdir()
        (t / "etc" / "gone").write_text("removed in layer2\n")
    sn(ctr_bin, daemon, "commit", "base-c", "base")

    sn(ctr_bin, daemon, "prepare", "layer2", "base-c")
    line = sn(ctr_bin, daemon, "mounts", str(targets / "layer2"), "layer2").stdout
    assert line.startswith("mount -t overlay overlay ") and "upperdir=" in line and "lowerdir=" in line
    with mount_printed(line, targets / "layer2") as t:
        assert (t / "base.txt").read_text() == "from base\n"
        (t / "layer2.txt").write_bytes(os.urandom(64 * 1024))
        (t / "etc" / "gone").unlink()
    sn(ctr_bin, daemon, "commit", "layer2-c", "layer2")

    sn(ctr_bin, daemon, "view", "v", "layer2-c")
    line = sn(ctr_bin, daemon, "mounts", str(targets / "v"), "v").stdout
    assert "upperdir=" not in line
    with mount_printed(line, targets / "v") as t:
        assert sorted(os.listdir(t)) == ["base.txt", "etc", "layer2.txt"]
        assert os.listdir(t / "etc") == []
        with pytest.raises(OSError):
            (t / "new").write_text("read-only")

    listed = rows(sn(ctr_bin, daemon, "ls").stdout)
    assert listed == {"base-c": ["Committed"], "layer2-c": ["base-c", "Committed"], "v": ["layer2-c", "View"]}
    tree = sn(ctr_bin, daemon, "tree").stdout.splitlines()
    assert tree == [" base-c", "  \\_ layer2-c", "    \\_ v"]

    info = json.loads(sn(ctr_bin, daemon, "info", "layer2-c").stdout)
    assert (info["Kind"], info["Name"], info["Parent"]) == ("Committed", "layer2-c", "base-c")
    assert "containerd.io/gc.root" in info["Labels"]
    assert sn(ctr_bin, daemon, "info", "nope", check=False).stderr.count("not found") == 1

    labelled = sn(ctr_bin, daemon, "label", "layer2-c", "team=blue", "tier=1").stdout.strip().split(",")
    assert {"team=blue", "tier=1"} <= set(labelled)
    sn(ctr_bin, daemon, "label", "layer2-c", "tier=")
    labels = json.loads(sn(ctr_bin, daemon, "info", "layer2-c").stdout)["Labels"]
    assert labels["team"] == "blue" and "tier" not in labels

    usage = rows(sn(ctr_bin, daemon, "usage", "-b").stdout)
    assert int(usage["layer2-c"][0]) >= 64 * 1024 and int(usage["layer2-c"][1]) >= 2
    assert int(usage["base-c"][1]) == 4  # fs, base.txt, etc, etc/gone
    assert usage["v"] == ["0", "0"]
    one = rows(sn(ctr_bin, daemon, "usage", "base-c").stdout)
    assert list(one) == ["base-c"]

    failed = sn(ctr_bin, daemon, "rm", "base-c", check=False)
    assert failed.returncode != 0
    assert "cannot remove snapshot with child" in failed.stderr and "failed precondition" in failed.stderr
    committed = sn(ctr_bin, daemon, "mounts", str(targets / "x"), "base-c", check=False)
    assert committed.returncode != 0 and "failed precondition" in committed.stderr

    sn(ctr_bin, daemon, "rm", "v")
    sn(ctr_bin, daemon, "rm", "layer2-c")
    sn(ctr_bin, daemon, "rm", "base-c")
    assert rows(sn(ctr_bin, daemon, "ls").stdout) == {}
    # the garbage collector removes the backend snapshots once no namespace names them
    snapshots_dir = daemon.root / OVERLAY_DIR / "snapshots"
    assert wait_for(lambda: os.listdir(snapshots_dir) == []), os.listdir(snapshots_dir)


def test_namespaces_isolate_snapshots_and_block_deletion(ctr_bin, daemon):
    sn(ctr_bin, daemon, "prepare", "held", ns="team")
    assert list(rows(sn(ctr_bin, daemon, "ls", ns="team").stdout)) == ["held"]
    assert rows(sn(ctr_bin, daemon, "ls", ns="other").stdout) == {}
    assert rows(sn(ctr_bin, daemon, "ls").stdout) == {}
    missing = sn(ctr_bin, daemon, "info", "held", ns="other", check=False)
    assert missing.returncode != 0 and "not found" in missing.stderr
    # the same key in another namespace is another snapshot
    sn(ctr_bin, daemon, "prepare", "held", ns="other")
    assert sn(ctr_bin, daemon, "mounts", "/mnt", "held", ns="team").stdout != \
        sn(ctr_bin, daemon, "mounts", "/mnt", "held", ns="other").stdout

    refused = ctr(ctr_bin, daemon, "namespaces", "rm", "team", check=False)
    assert refused.returncode != 0
    assert 'still has snapshots on "overlayfs" snapshotter' in refused.stderr
    assert "failed precondition" in refused.stderr
    sn(ctr_bin, daemon, "rm", "held", ns="team")
    ctr(ctr_bin, daemon, "namespaces", "rm", "team")
    assert "team" not in ctr(ctr_bin, daemon, "namespaces", "ls", "-q").stdout.split()
    assert list(rows(sn(ctr_bin, daemon, "ls", ns="other").stdout)) == ["held"]


def test_native_snapshotter_with_ctr(ctr_bin, daemon, targets):
    native = dict(snapshotter="native")
    sn(ctr_bin, daemon, "prepare", "n1", **native)
    line = sn(ctr_bin, daemon, "mounts", str(targets / "n1"), "n1", **native).stdout
    assert line.startswith(f"mount -t bind {daemon.root / NATIVE_DIR / 'snapshots'}/")
    with mount_printed(line, targets / "n1") as t:
        (t / "hello").write_text("native\n")
        os.symlink("hello", t / "link")
    sn(ctr_bin, daemon, "commit", "n1-c", "n1", **native)
    sn(ctr_bin, daemon, "prepare", "n2", "n1-c", **native)
    line = sn(ctr_bin, daemon, "mounts", str(targets / "n2"), "n2", **native).stdout
    assert line.startswith("mount -t bind ") and line.rstrip().endswith("-o rbind,rw")
    with mount_printed(line, targets / "n2") as t:
        assert (t / "hello").read_text() == "native\n" and os.readlink(t / "link") == "hello"
        (t / "hello").write_text("changed in the copy\n")
    sn(ctr_bin, daemon, "view", "nv", "n1-c", **native)
    with mount_printed(sn(ctr_bin, daemon, "mounts", str(targets / "nv"), "nv", **native).stdout, targets / "nv") as t:
        assert (t / "hello").read_text() == "native\n"  # the parent is untouched
    assert rows(sn(ctr_bin, daemon, "ls", **native).stdout) == {
        "n1-c": ["Committed"], "n2": ["n1-c", "Active"], "nv": ["n1-c", "View"],
    }
    assert rows(sn(ctr_bin, daemon, "ls").stdout) == {}  # overlayfs sees none of them
    env_selected = subprocess.run(
        [ctr_bin, "--address", daemon.address, "snapshots", "ls"], capture_output=True, text=True,
        env={**os.environ, "CONTAINERD_SNAPSHOTTER": "native"}, check=True,
    )
    assert set(rows(env_selected.stdout)) == {"n1-c", "n2", "nv"}
    for key in ("nv", "n2", "n1-c"):
        sn(ctr_bin, daemon, "rm", key, **native)
    snapshots_dir = daemon.root / NATIVE_DIR / "snapshots"
    assert wait_for(lambda: os.listdir(snapshots_dir) == []), os.listdir(snapshots_dir)


def test_unknown_snapshotter_and_plugins(ctr_bin, daemon):
    bad = sn(ctr_bin, daemon, "ls", snapshotter="nope", check=False)
    assert bad.returncode != 0 and "snapshotter not loaded: nope: invalid argument" in bad.stderr
    plugins = ctr(ctr_bin, daemon, "plugins", "ls").stdout.splitlines()
    snapshotters = {line.split()[1]: line.split()[2:] for line in plugins
                    if line.startswith("io.containerd.snapshotter.v1")}
    arch = {"x86_64": "amd64", "aarch64": "arm64/v8"}.get(os.uname().machine, os.uname().machine)
    assert snapshotters == {"native": [f"linux/{arch}", "ok"], "overlayfs": [f"linux/{arch}", "ok"]}
    detailed = ctr(ctr_bin, daemon, "plugins", "ls", "--detailed", "id==overlayfs").stdout
    assert str(daemon.root / OVERLAY_DIR) in detailed


def test_snapshots_survive_a_daemon_crash(ctr_bin, daemon, targets):
    sn(ctr_bin, daemon, "prepare", "a")
    sn(ctr_bin, daemon, "commit", "A", "a")
    sn(ctr_bin, daemon, "prepare", "b", "A")
    before = sn(ctr_bin, daemon, "ls").stdout
    daemon.kill()
    daemon.start()
    assert sn(ctr_bin, daemon, "ls").stdout == before
    with mount_printed(sn(ctr_bin, daemon, "mounts", str(targets / "b"), "b").stdout, targets / "b") as t:
        (t / "after-restart").write_text("ok")
    sn(ctr_bin, daemon, "commit", "B", "b")
    assert rows(sn(ctr_bin, daemon, "ls").stdout) == {"A": ["Committed"], "B": ["A", "Committed"]}


def test_overlayfs_unsupported_root_reports_plugin_error(ctr_bin, daemon_factory, tmp_path):
    """overlayfs cannot use an overlay mount as upper dir: with root_path inside one, the
    plugin shows ``error`` with the kernel's reason, and native keeps working."""
    ov = tmp_path / "ov"
    for d in ("lower", "upper", "work", "merged"):
        (ov / d).mkdir(parents=True)
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    f"lowerdir={ov / 'lower'},upperdir={ov / 'upper'},workdir={ov / 'work'}", str(ov / "merged")],
                   check=True)
    try:
        d = daemon_factory(
            f'version = 2\n[plugins."io.containerd.snapshotter.v1.overlayfs"]\nroot_path = "{ov / "merged" / "snap"}"\n'
        )
        listed = ctr(ctr_bin, d, "plugins", "ls").stdout.splitlines()
        status = {line.split()[1]: line.split()[-1] for line in listed if line.startswith("io.containerd.snapshotter.v1")}
        assert status == {"native": "ok", "overlayfs": "error"}
        detailed = ctr(ctr_bin, d, "plugins", "ls", "--detailed", "id==overlayfs").stdout
        assert "overlayfs is not supported" in detailed and "failed to mount overlay" in detailed
        missing = sn(ctr_bin, d, "ls", check=False)
        assert missing.returncode != 0 and "snapshotter not loaded: overlayfs" in missing.stderr
        sn(ctr_bin, d, "prepare", "n", snapshotter="native")
        assert not (ov / "merged" / "snap" / "snapshots").exists()
        d.stop()
    finally:
        unmount_all(str(ov / "merged"))
        shutil.rmtree(ov, ignore_errors=True)


def test_grpc_lease_header_and_list_batches(daemon):
    """Wire-level: a Prepare carrying ``containerd-lease`` is held by that lease (a missing
    lease is NOT_FOUND and leaves nothing), and List streams batches of 100."""
    import grpc

    from pycontainerd.api.services.leases.v1 import leases_pb2, leases_pb2_grpc
    from pycontainerd.api.services.snapshots.v1 import snapshots_pb2 as pb
    from pycontainerd.api.services.snapshots.v1 import snapshots_pb2_grpc

    ns = (("containerd-namespace", "wire"),)
    with daemon.channel() as ch:
        snaps = snapshots_pb2_grpc.SnapshotsStub(ch)
        leases = leases_pb2_grpc.LeasesStub(ch)
        leases.Create(leases_pb2.CreateRequest(id="unpack"), metadata=ns)
        held = ns + (("containerd-lease", "unpack"),)
        snaps.Prepare(pb.PrepareSnapshotRequest(snapshotter="overlayfs", key="k"), metadata=held)
        snaps.Commit(pb.CommitSnapshotRequest(snapshotter="overlayfs", name="K", key="k"), metadata=held)
        resources = leases.ListResources(leases_pb2.ListResourcesRequest(id="unpack"), metadata=ns).resources
        assert [(r.id, r.type) for r in resources] == [("K", "snapshots/overlayfs")]
        with pytest.raises(grpc.RpcError) as err:
            snaps.Prepare(pb.PrepareSnapshotRequest(snapshotter="overlayfs", key="x"),
                          metadata=ns + (("containerd-lease", "nope"),))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.RpcError) as err:
            snaps.Stat(pb.StatSnapshotRequest(snapshotter="overlayfs", key="x"), metadata=ns)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.RpcError) as err:
            snaps.Stat(pb.StatSnapshotRequest(snapshotter="", key="x"), metadata=ns)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "snapshotter argument missing" in err.value.details()

        for i in range(249):
            snaps.View(pb.ViewSnapshotRequest(snapshotter="overlayfs", key=f"v{i:03}", parent="K"), metadata=held)
        batches = [len(r.info) for r in snaps.List(pb.ListSnapshotsRequest(snapshotter="overlayfs"), metadata=ns)]
        assert batches == [100, 100, 50]
        views = list(snaps.List(pb.ListSnapshotsRequest(snapshotter="overlayfs", filters=["kind==view"]), metadata=ns))
        assert sum(len(r.info) for r in views) == 249
        usage = snaps.Usage(pb.UsageRequest(snapshotter="overlayfs", key="K"), metadata=ns)
        assert usage.inodes == 1
        snaps.Cleanup(pb.CleanupRequest(snapshotter="overlayfs"), metadata=ns)
