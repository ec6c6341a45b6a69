"""The snapshotter conformance suite (:mod:`tests.conformance.snapshotter`) against the
overlayfs and native snapshotters, directly and through the namespaced metadata layer
(as containerd runs its testsuite against ``metadata``), with real mounts."""

from __future__ import annotations

import errno
import os
import shutil
import stat
from pathlib import Path

import pytest

from pycontainerd import namespaces
from pycontainerd.errdefs import FailedPrecondition
from pycontainerd.metadata.db import MetadataDB
from pycontainerd.metadata.snapshots import SnapshotStore
from pycontainerd.mount import Mount, unmount_all
from pycontainerd.snapshots.native import NativeSnapshotter
from pycontainerd.snapshots.overlay import OverlaySnapshotter
from pycontainerd.snapshots.types import Info
from tests.conformance import fstest
from tests.conformance.snapshotter import *  # noqa: F403 - the suite's tests and fixtures
from tests.conformance.snapshotter import SnapshotterUnderTest

pytestmark = [pytest.mark.root, pytest.mark.integration]

BACKENDS = {"overlayfs": OverlaySnapshotter, "native": NativeSnapshotter}


class InNamespace:
    """A :class:`SnapshotStore` called with namespace ``testsuite`` in the context, as the
    gRPC interceptor would set it."""

    def __init__(self, store: SnapshotStore, ns: str = "testsuite") -> None:
        self.store = store
        self.ns = ns

    def __getattr__(self, name):
        method = getattr(self.store, name)

        async def call(*args, **kwargs):
            with namespaces.using(self.ns):
                return await method(*args, **kwargs)

        return call


@pytest.fixture(params=["overlayfs", "native", "metadata-overlayfs", "metadata-native"])
def snapshotter_factory(request):
    kind = request.param

    def make(root: Path) -> SnapshotterUnderTest:
        backend = BACKENDS[kind.removeprefix("metadata-")](root / "backend")
        if not kind.startswith("metadata-"):
            return SnapshotterUnderTest(backend, backend.snapshots_dir, backend.close_sync)
        db = MetadataDB(root / "meta")
        store = SnapshotStore(db, backend.name, backend)

        def close() -> None:
            backend.close_sync()
            db.close()

        return SnapshotterUnderTest(InNamespace(store), backend.snapshots_dir, close)

    return make


# ---------------------------------------------------------------------------- backend specifics


@pytest.fixture
def clean_tmp(tmp_path):
    """``tmp_path``, checked for left-over mounts and emptied afterwards."""
    from tests.conformance.snapshotter import mounts_below

    yield tmp_path
    leaked = mounts_below(tmp_path)
    for point in reversed(leaked):
        unmount_all(point)
    shutil.rmtree(tmp_path, ignore_errors=True)
    assert not leaked, leaked


def test_overlay_mount_options_follow_containerd(clean_tmp):
    sn = OverlaySnapshotter(clean_tmp / "root")
    try:
        sn.prepare_sync("a")
        sn.commit_sync("A", "a")
        sn.prepare_sync("b", "A")
        sn.commit_sync("B", "b")
        [m] = sn.prepare_sync("c", "B")
        index = ["index=off"] if os.path.exists("/sys/module/overlay/parameters/index") else []
        # ids stay with a snapshot through its commit: A=1, B=2, c=3
        up, work, lower = (str(sn.upper_path("3")), str(sn.work_path("3")),
                           f"{sn.upper_path('2')}:{sn.upper_path('1')}")
        assert m == Mount("overlay", "overlay", (*index, f"workdir={work}", f"upperdir={up}", f"lowerdir={lower}"))
        assert sn.view_sync("v1", "A") == [Mount("bind", str(sn.upper_path("1")), ("ro", "rbind"))]
        [v2] = sn.view_sync("v2", "B")
        assert v2.type == "overlay" and not any(o.startswith(("upperdir", "workdir")) for o in v2.options)
        assert sn.upper_path("5").is_dir() and not sn.work_path("5").exists()  # a view gets no work dir
    finally:
        sn.close_sync()


def test_overlay_upperdir_label(clean_tmp):
    sn = OverlaySnapshotter(clean_tmp / "root", upperdir_label=True)
    try:
        sn.prepare_sync("a", "", {"x": "1"})
        label = "containerd.io/snapshot/overlay.upperdir"
        expected = str(sn.upper_path("1"))
        assert sn.stat_sync("a").labels == {"x": "1", label: expected}
        assert [i.labels[label] for i in sn.walk_sync()] == [expected]
        assert sn.update_sync(Info("a", labels={"y": "2"})).labels == {"y": "2", label: expected}
    finally:
        sn.close_sync()


def test_overlay_remapped_snapshot_id_maps_its_layers(clean_tmp):
    """containerd 2's ``uidmapping``/``gidmapping`` labels: the mounts carry the maps, the
    upper dir belongs to the mapped root, the image's files show the mapped owners through
    id-mapped lower layers (no copy: the layer on disk keeps its owners), and nothing but the
    overlay stays mounted; a mapping without container id 0 is refused, leaving nothing."""
    from pycontainerd.errdefs import InvalidArgument
    from pycontainerd.mount import mount_all
    from tests.conformance.snapshotter import mounts_below

    sn = OverlaySnapshotter(clean_tmp / "root")
    target = clean_tmp / "rootfs"
    target.mkdir()
    labels = {"containerd.io/snapshot/uidmapping": "0:200000:65536",
              "containerd.io/snapshot/gidmapping": "0:300000:65536"}
    try:
        sn.prepare_sync("a")
        (sn.upper_path("1") / "root-file").write_text("x")
        os.lchown(sn.upper_path("1") / "root-file", 0, 0)
        (sn.upper_path("1") / "user-file").write_text("y")
        os.lchown(sn.upper_path("1") / "user-file", 1000, 1000)
        sn.commit_sync("A", "a")
        [m] = sn.prepare_sync("c", "A", labels)
        assert m.options[-2:] == ("uidmap=0:200000:65536", "gidmap=0:300000:65536")
        assert sn.mounts_sync("c") == [m]
        up = sn.upper_path("2").stat()
        assert (up.st_uid, up.st_gid) == (200000, 300000)
        mount_all([m], str(target))
        try:
            owners = {n: (os.lstat(target / n).st_uid, os.lstat(target / n).st_gid) for n in ("root-file", "user-file")}
            assert owners == {"root-file": (200000, 300000), "user-file": (201000, 301000)}
            assert mounts_below(clean_tmp) == [str(target)]
            assert not [p for p in clean_tmp.iterdir() if p.name.startswith(".idmap-")]
        finally:
            unmount_all(str(target))
        assert os.lstat(sn.upper_path("1") / "root-file").st_uid == 0
        before = sorted(os.listdir(sn.snapshots_dir))
        with pytest.raises(InvalidArgument, match="container id 0 is not mapped"):
            sn.prepare_sync("d", "A", {**labels, "containerd.io/snapshot/uidmapping": "1:200000:65536"})
        assert sorted(os.listdir(sn.snapshots_dir)) == before
    finally:
        sn.close_sync()


def test_overlay_unsupported_filesystem_is_a_clear_error(clean_tmp, monkeypatch):
    from pycontainerd import mount as mount_mod

    def refuse(m, target):
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(mount_mod, "mount", refuse)
    with pytest.raises(FailedPrecondition, match="overlayfs is not supported on .*failed to mount overlay"):
        OverlaySnapshotter(clean_tmp / "root")
    assert os.listdir(clean_tmp / "root") == []  # the probe directory is gone


def test_native_copy_keeps_owners_modes_links_devices_and_xattrs(clean_tmp):
    sn = NativeSnapshotter(clean_tmp / "root")
    try:
        [m] = sn.prepare_sync("a")
        src = Path(m.source)
        (src / "file").write_bytes(b"data")
        os.chmod(src / "file", 0o4750)
        os.chown(src / "file", 1000, 1001)
        os.link(src / "file", src / "hardlink")
        os.symlink("file", src / "symlink")
        os.mknod(src / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        os.mkfifo(src / "fifo")
        os.setxattr(src / "file", "user.origin", b"layer-a")
        os.chmod(src, 0o700)
        sn.commit_sync("A", "a")
        [child] = sn.prepare_sync("b", "A")
        dst = Path(child.source)
        assert dst != src
        assert fstest.describe(src) == fstest.describe(dst)
        assert stat.S_IMODE(dst.stat().st_mode) == 0o700  # the root's mode is copied too
        assert (dst / "file").stat().st_ino == (dst / "hardlink").stat().st_ino
        assert os.getxattr(dst / "file", "user.origin") == b"layer-a"
        assert stat.S_ISCHR((dst / "null").lstat().st_mode) and stat.S_ISFIFO((dst / "fifo").lstat().st_mode)
    finally:
        sn.close_sync()
