"""Snapshotter conformance suite (containerd's ``snapshots/testsuite``), reusable for every
snapshotter.

Use it from a test module that defines a ``snapshotter_factory`` fixture and imports the
tests::

    from tests.conformance.snapshotter import *  # noqa: F403

    @pytest.fixture(params=["overlayfs", "native"])
    def snapshotter_factory(request, tmp_path):
        yield lambda root: Backend(...)   # -> SnapshotterUnderTest

The factory takes a root directory and returns a :class:`SnapshotterUnderTest`: the
snapshotter (the async :class:`~pycontainerd.snapshots.types.Snapshotter` interface), the
backend's snapshots directory (for the orphan checks) and a ``close``. The suite mounts
what the snapshotter returns, so it needs root; every mount is undone in a ``finally`` and
the ``work`` fixture fails a test that leaves anything mounted below its directory.

Old bugs are named after their issues (``test_moby_25244_…``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from pycontainerd.errdefs import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from pycontainerd.mount import Mount, mount_all, unmount_all
from pycontainerd.snapshots.types import Info, Kind, Snapshotter, Usage
from tests.conformance import fstest

GC_ROOT = {"containerd.io/gc.root": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

__all__ = [
    "SnapshotterUnderTest",
    "mounted",
    "mounts_below",
    "sut",
    "snapshotter",
    "work",
    "test_basic",
    "test_stat_active",
    "test_stat_committed",
    "test_transitivity",
    "test_prepare_view_duplicates_fail",
    "test_update",
    "test_remove_and_reuse_keys",
    "test_walk_filters",
    "test_moby_21555_layer_file_update",
    "test_moby_25244_remove_directory_in_lower_layer",
    "test_moby_24913_chown",
    "test_moby_27298_directory_permission_on_commit",
    "test_remove_intermediate_snapshot",
    "test_deleted_files_in_child_snapshot",
    "test_move_file_from_lower_layer",
    "test_hardlinks_symlinks_and_modes_survive_layers",
    "test_view_is_readonly",
    "test_stat_in_walk",
    "test_close_twice",
    "test_root_permission",
    "test_128_layers_mount",
    "test_usage",
    "test_mounts_rules",
    "test_commit_rules",
    "test_failed_prepare_leaves_no_directory",
    "test_cleanup_removes_orphans",
]


@dataclass
class SnapshotterUnderTest:
    """What a factory returns."""

    snapshotter: Snapshotter
    snapshots_dir: Path
    """The backend's ``snapshots/`` directory (one entry per snapshot id)."""
    close: Callable[[], None]


def mounts_below(path: Path) -> list[str]:
    """Mount points at or below ``path`` (from ``/proc/self/mountinfo``)."""
    real = os.path.realpath(path)
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].encode().decode("unicode_escape")
            if point == real or point.startswith(real + "/"):
                out.append(point)
    return out


@contextlib.contextmanager
def mounted(mounts: Sequence[Mount], target: Path) -> Iterator[Path]:
    """Mount ``mounts`` on ``target`` (created if needed) and always unmount."""
    target.mkdir(parents=True, exist_ok=True)
    mount_all(list(mounts), str(target))
    try:
        yield target
    finally:
        unmount_all(str(target))


@pytest.fixture
def work(tmp_path) -> Iterator[Path]:
    """A scratch directory; the test fails if a mount is left below ``tmp_path``, which is
    emptied afterwards (mounts first, so nothing outlives the test)."""
    w = tmp_path / "work"
    w.mkdir()
    yield w
    leaked = mounts_below(tmp_path)
    for point in reversed(leaked):
        with contextlib.suppress(OSError):
            unmount_all(point)
    if not mounts_below(tmp_path):
        for child in tmp_path.iterdir():
            shutil.rmtree(child, ignore_errors=True)
    assert not leaked, f"mounts left behind: {leaked}"


@pytest.fixture
def sut(snapshotter_factory, tmp_path, work) -> Iterator[SnapshotterUnderTest]:
    """The snapshotter under test on ``<tmp_path>/root``, closed afterwards."""
    s = snapshotter_factory(tmp_path / "root")
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def snapshotter(sut) -> Snapshotter:
    return sut.snapshotter


# ---------------------------------------------------------------------------- helpers


async def apply_to_mounts(mounts: Sequence[Mount], work: Path, applier: fstest.Applier) -> None:
    target = work / f"apply-{time.monotonic_ns()}"
    with mounted(mounts, target):
        applier(target)
    target.rmdir()


async def create_snapshot(sn: Snapshotter, parent: str, work: Path, applier: fstest.Applier) -> str:
    name = f"layer-{time.monotonic_ns()}"
    mounts = await sn.prepare(f"{name}-prepare", parent, GC_ROOT)
    await apply_to_mounts(mounts, work, applier)
    await sn.commit(name, f"{name}-prepare", GC_ROOT)
    return name


async def check_snapshot(sn: Snapshotter, work: Path, name: str, expected: Path) -> None:
    view = f"{name}-view"
    mounts = await sn.view(view, name, GC_ROOT)
    target = work / f"check-{time.monotonic_ns()}"
    try:
        with mounted(mounts, target):
            fstest.check_directory_equal(expected, target)
    finally:
        await sn.remove(view)
        target.rmdir()


async def check_snapshots(sn: Snapshotter, work: Path, *appliers: fstest.Applier) -> None:
    """Build one layer per applier, each on the previous, and compare every layer's view
    with the same appliers run on a plain directory."""
    flat = work / "flat"
    flat.mkdir()
    parent = ""
    for applier in appliers:
        parent = await create_snapshot(sn, parent, work, applier)
        applier(flat)
        await check_snapshot(sn, work, parent, flat)


async def names(sn: Snapshotter, *filters: str) -> list[str]:
    return sorted(i.name for i in await sn.walk(list(filters)))


# ---------------------------------------------------------------------------- tests


async def test_basic(snapshotter, work):
    sn = snapshotter
    initial = fstest.apply(
        fstest.create_file("/foo", b"foo\n", 0o777),
        fstest.create_dir("/a", 0o755),
        fstest.create_dir("/a/b", 0o755),
        fstest.create_dir("/a/b/c", 0o755),
    )
    diff = fstest.apply(
        fstest.create_file("/bar", b"bar\n", 0o777),
        fstest.create_file("/foo", b"bar\n", 0o777),
        fstest.remove_all("/a/b"),
    )
    preparing = str(work / "preparing")
    mounts = await sn.prepare(preparing, "", GC_ROOT)
    assert mounts
    with mounted(mounts, work / "preparing"):
        initial(work / "preparing")
    committed = str(work / "committed")
    await sn.commit(committed, preparing, GC_ROOT)
    si = await sn.stat(committed)
    assert (si.parent, si.kind) == ("", Kind.COMMITTED)
    with pytest.raises(NotFound):
        await sn.stat(preparing)

    nxt = str(work / "nextlayer")
    mounts = await sn.prepare(nxt, committed, GC_ROOT)
    expected = work / "expected"
    expected.mkdir()
    initial(expected)
    with mounted(mounts, work / "nextlayer"):
        fstest.check_directory_equal(expected, work / "nextlayer")
        diff(work / "nextlayer")
    ni = await sn.stat(nxt)
    assert (ni.parent, ni.kind) == (committed, Kind.ACTIVE)

    next_committed = str(work / "committed-next")
    await sn.commit(next_committed, nxt, GC_ROOT)
    si2 = await sn.stat(next_committed)
    assert (si2.parent, si2.kind) == (committed, Kind.COMMITTED)
    with pytest.raises(NotFound):
        await sn.stat(nxt)

    walked = {i.name: i for i in await sn.walk()}
    assert walked[committed] == si and walked[next_committed] == si2

    view = str(work / "nextnextlayer")
    mounts = await sn.view(view, next_committed, GC_ROOT)
    diff(expected)
    with mounted(mounts, work / "nextnextlayer"):
        fstest.check_directory_equal(expected, work / "nextnextlayer")
    await sn.remove(view)
    with pytest.raises(FailedPrecondition, match="remove"):
        await sn.remove(committed)
    await sn.remove(next_committed)
    await sn.remove(committed)


async def test_stat_active(snapshotter, work):
    key = str(work / "preparing")
    mounts = await snapshotter.prepare(key, "", GC_ROOT)
    with mounted(mounts, work / "preparing") as target:
        (target / "foo").write_text("foo\n")
        si = await snapshotter.stat(key)
    assert (si.name, si.kind, si.parent) == (key, Kind.ACTIVE, "")


async def test_stat_committed(snapshotter, work):
    key = str(work / "preparing")
    mounts = await snapshotter.prepare(key, "", GC_ROOT)
    with mounted(mounts, work / "preparing") as target:
        (target / "foo").write_text("foo\n")
    committed = str(work / "committed")
    await snapshotter.commit(committed, key, GC_ROOT)
    si = await snapshotter.stat(committed)
    assert (si.name, si.kind, si.parent) == (committed, Kind.COMMITTED, "")
    assert si.labels == GC_ROOT


async def test_transitivity(snapshotter, work):
    sn = snapshotter
    with mounted(await sn.prepare("preparing", "", GC_ROOT), work / "p") as t:
        (t / "foo").write_text("foo\n")
    await sn.commit("snapA", "preparing", GC_ROOT)
    with mounted(await sn.prepare("next", "snapA", GC_ROOT), work / "n") as t:
        (t / "foo").write_text("foo bar\n")
    await sn.commit("snapB", "next", GC_ROOT)
    a, b = await sn.stat("snapA"), await sn.stat("snapB")
    assert a.parent == "" and b.parent == "snapA"
    assert (await sn.stat(b.parent)).parent == ""


async def test_prepare_view_duplicates_fail(snapshotter, work):
    sn = snapshotter
    await sn.prepare("preparing", "", GC_ROOT)
    await sn.commit("snapA", "preparing", GC_ROOT)
    await sn.prepare("newlayer", "snapA", GC_ROOT)
    with pytest.raises(AlreadyExists):
        await sn.view("newlayer", "snapA", GC_ROOT)
    await sn.prepare("prepLayer", "snapA", GC_ROOT)
    with pytest.raises(AlreadyExists):
        await sn.prepare("prepLayer", "snapA", GC_ROOT)
    await sn.view("viewLayer", "snapA", GC_ROOT)
    with pytest.raises(AlreadyExists):
        await sn.view("viewLayer", "snapA", GC_ROOT)
    with pytest.raises(NotFound):
        await sn.prepare("orphan", "no-such-parent", GC_ROOT)
    with pytest.raises(InvalidArgument, match="not committed"):
        await sn.prepare("on-active", "newlayer", GC_ROOT)


async def base_snapshots(sn: Snapshotter) -> None:
    await sn.prepare("c1-a", "", GC_ROOT)
    await sn.commit("c1", "c1-a", GC_ROOT)
    await sn.prepare("c2-a", "c1", GC_ROOT)
    await sn.commit("c2", "c2-a", GC_ROOT)
    await sn.prepare("a1", "c2", GC_ROOT)
    await sn.prepare("a2", "", GC_ROOT)
    await sn.view("v1", "c2", GC_ROOT)
    await sn.view("v2", "", GC_ROOT)


async def test_update(snapshotter):
    sn = snapshotter
    t1 = time.time_ns()
    await base_snapshots(sn)
    t2 = time.time_ns()
    cases = [("c1", Kind.COMMITTED, ""), ("c2", Kind.COMMITTED, "c1"), ("a1", Kind.ACTIVE, "c2"),
             ("a2", Kind.ACTIVE, ""), ("v1", Kind.VIEW, "c2"), ("v2", Kind.VIEW, "")]
    for name, kind, parent in cases:
        st = await sn.stat(name)
        assert t1 <= st.created_at <= t2, name
        assert st.created_at == st.updated_at, name
        assert (st.kind, st.parent, st.name) == (kind, parent, name)

        root = GC_ROOT["containerd.io/gc.root"]
        expected = {"l1": "v1", "l2": "v2", "l3": "v3", "containerd.io/gc.root": root}
        u1 = time.time_ns()
        st = await sn.update(replace(st, parent="doesnotexist", labels=expected))
        u2 = time.time_ns()
        assert u1 <= st.updated_at <= u2
        assert (st.kind, st.parent, st.name) == (kind, parent, name)
        assert st.labels == expected

        st = await sn.update(replace(st, labels={"l1": "updated", "l4": "v4"}), ["labels.l1", "labels.l2"])
        assert st.labels == {"l1": "updated", "l3": "v3", "containerd.io/gc.root": root}

        expected = {"l4": "v4", "containerd.io/gc.root": root}
        st = await sn.update(replace(st, labels=expected), ["labels"])
        assert st.labels == expected
        assert (await sn.stat(name)).labels == expected

        with pytest.raises(InvalidArgument, match='cannot update "parent" field'):
            await sn.update(replace(st, parent="doesnotexist"), ["parent"])
    with pytest.raises(NotFound):
        await sn.update(Info(name="missing", labels={"a": "b"}))


async def test_remove_and_reuse_keys(snapshotter):
    sn = snapshotter
    await sn.prepare("committed-a", "", GC_ROOT)
    await sn.commit("committed-1", "committed-a", GC_ROOT)
    await sn.prepare("reuse-1", "committed-1", GC_ROOT)
    await sn.remove("reuse-1")
    await sn.view("reuse-1", "committed-1", GC_ROOT)
    await sn.remove("reuse-1")
    await sn.prepare("reuse-1", "", GC_ROOT)
    await sn.remove("committed-1")
    await sn.commit("committed-1", "reuse-1", GC_ROOT)
    with pytest.raises(NotFound):
        await sn.remove("reuse-1")
    with pytest.raises(NotFound):
        await sn.remove("never-existed")


async def test_walk_filters(snapshotter):
    sn = snapshotter
    root = {"containerd.io/gc.root": "check-walk"}
    await sn.prepare("a-np", "", root)
    await sn.prepare("p-tmp", "", root)
    await sn.commit("p", "p-tmp", root)
    await sn.prepare("a", "p", root)
    await sn.view("v", "p", root)
    await sn.prepare("p-wl-tmp", "", root)
    await sn.commit("p-wl", "p-wl-tmp", {"l": "1", **root})
    await sn.prepare("a-wl", "p-wl", {"l": "2", **root})
    await sn.view("v-wl", "p-wl", {"l": "3", **root})
    await sn.prepare("a-np-wl", "", {"l": "2", **root})
    cases = [
        (["a-np", "p", "a", "v", "p-wl", "a-wl", "v-wl", "a-np-wl"], ['labels."containerd.io/gc.root"==check-walk']),
        (["a-np", "a", "a-wl", "a-np-wl"], ['kind==active,labels."containerd.io/gc.root"==check-walk']),
        (["v", "v-wl"], ['kind==view,labels."containerd.io/gc.root"==check-walk']),
        (["p", "p-wl"], ['kind==committed,labels."containerd.io/gc.root"==check-walk']),
        (["p", "a-np-wl"], ["name==p", "name==a-np-wl"]),
        (["a-wl"], ["name==a-wl,labels.l"]),
        (["a", "v"], ["parent==p"]),
        (["a", "v", "a-wl", "v-wl"], ['parent!="",labels."containerd.io/gc.root"==check-walk']),
        (["p-wl", "a-wl", "v-wl", "a-np-wl"], ["labels.l"]),
        (["a-wl", "a-np-wl"], ["labels.l==2"]),
        (["a-wl", "a-np-wl", "v-wl"], ["labels.l~=^[23]$"]),
    ]
    for expected, filters in cases:
        assert await names(sn, *filters) == sorted(expected), filters
    with pytest.raises(InvalidArgument):
        await sn.walk(["kind==="])


async def test_moby_21555_layer_file_update(snapshotter, work):
    l1 = fstest.apply(
        fstest.create_dir("/etc", 0o700),
        fstest.create_file("/etc/hosts", b"mydomain 10.0.0.1", 0o644),
        fstest.create_file("/etc/profile", b"PATH=/usr/bin", 0o644),
    )
    l2 = fstest.apply(
        fstest.create_file("/etc/hosts", b"mydomain 10.0.0.2", 0o644),
        fstest.create_file("/etc/profile", b"PATH=/usr/bin", 0o666),
        fstest.create_dir("/root", 0o700),
        fstest.create_file("/root/.bashrc", b"PATH=/usr/sbin:/usr/bin", 0o644),
    )
    await check_snapshots(snapshotter, work, l1, l2)


async def test_moby_25244_remove_directory_in_lower_layer(snapshotter, work):
    l1 = fstest.apply(fstest.create_dir("/lib", 0o700), fstest.create_file("/lib/hidden", b"", 0o644))
    l2 = fstest.apply(
        fstest.remove_all("/lib"),
        fstest.create_dir("/lib", 0o700),
        fstest.create_file("/lib/not-hidden", b"", 0o644),
    )
    l3 = fstest.apply(fstest.create_file("/lib/newfile", b"", 0o644))
    await check_snapshots(snapshotter, work, l1, l2, l3)


async def test_moby_24913_chown(snapshotter, work):
    l1 = fstest.apply(
        fstest.create_dir("/opt", 0o700),
        fstest.create_dir("/opt/a", 0o700),
        fstest.create_dir("/opt/a/b", 0o700),
        fstest.create_file("/opt/a/b/file.txt", b"hello", 0o644),
    )
    l2 = fstest.apply(
        fstest.chown("/opt", 1, 1),
        fstest.chown("/opt/a", 1, 1),
        fstest.chown("/opt/a/b", 1, 1),
        fstest.chown("/opt/a/b/file.txt", 1, 1),
    )
    await check_snapshots(snapshotter, work, l1, l2)


async def test_moby_27298_directory_permission_on_commit(snapshotter, work):
    l1 = fstest.apply(
        fstest.create_dir("/dir1", 0o700),
        fstest.create_dir("/dir2", 0o700),
        fstest.create_dir("/dir3", 0o700),
        fstest.create_dir("/dir4", 0o700),
        fstest.create_file("/dir4/f1", b"...", 0o644),
        fstest.create_dir("/dir5", 0o700),
        fstest.create_file("/dir5/f1", b"...", 0o644),
        fstest.chown("/dir1", 1, 1),
        fstest.chown("/dir2", 1, 1),
        fstest.chown("/dir3", 1, 1),
        fstest.chown("/dir5", 1, 1),
        fstest.chown("/dir5/f1", 1, 1),
    )
    l2 = fstest.apply(
        fstest.chown("/dir2", 0, 0),
        fstest.remove_all("/dir3"),
        fstest.chown("/dir4", 1, 1),
        fstest.chown("/dir4/f1", 1, 1),
    )
    l3 = fstest.apply(
        fstest.create_dir("/dir3", 0o700),
        fstest.chown("/dir3", 1, 1),
        fstest.remove_all("/dir5"),
        fstest.create_dir("/dir5", 0o700),
        fstest.chown("/dir5", 1, 1),
    )
    await check_snapshots(snapshotter, work, l1, l2, l3)


async def test_remove_intermediate_snapshot(snapshotter, work):
    sn = snapshotter
    with mounted(await sn.prepare("base", "", GC_ROOT), work / "base"):
        await sn.commit("committed-base", "base", GC_ROOT)
    await sn.prepare("intermediate", "committed-base", GC_ROOT)
    await sn.commit("committed-inter", "intermediate", GC_ROOT)
    await sn.prepare("toplayer", "committed-inter", GC_ROOT)
    with pytest.raises(FailedPrecondition, match="cannot remove snapshot with child"):
        await sn.remove("committed-inter")
    await sn.remove("toplayer")
    await sn.remove("committed-inter")
    await sn.remove("committed-base")
    assert await sn.walk() == []


async def test_deleted_files_in_child_snapshot(snapshotter, work):
    l1 = fstest.apply(fstest.create_file("/foo", b"foo\n", 0o777), fstest.create_file("/foobar", b"foobar\n", 0o777))
    l2 = fstest.apply(fstest.remove_all("/foobar"))
    await check_snapshots(snapshotter, work, l1, l2, fstest.apply())


async def test_move_file_from_lower_layer(snapshotter, work):
    l1 = fstest.apply(
        fstest.create_dir("/dir1", 0o700),
        fstest.create_file("/dir1/f1", b"Hello", 0o644),
        fstest.create_dir("dir2", 0o700),
        fstest.create_file("dir2/f2", b"...", 0o644),
    )
    l2 = fstest.apply(
        fstest.create_dir("/dir3", 0o700),
        fstest.create_file("/dir3/f1", b"Hello", 0o644),
        fstest.remove_all("/dir1"),
        fstest.link("dir2/f2", "dir3/f2"),
        fstest.remove_all("dir2/f2"),
    )
    await check_snapshots(snapshotter, work, l1, l2)


async def test_hardlinks_symlinks_and_modes_survive_layers(snapshotter, work):
    l1 = fstest.apply(
        fstest.create_dir("/bin", 0o755),
        fstest.create_file("/bin/busybox", b"\x7fELF...", 0o4755),
        fstest.link("/bin/busybox", "/bin/sh"),
        fstest.symlink("busybox", "/bin/ls"),
        fstest.create_dir("/tmp", 0o1777),
    )
    l2 = fstest.apply(fstest.create_file("/bin/extra", b"x", 0o700), fstest.symlink("/nowhere", "/dangling"))
    await check_snapshots(snapshotter, work, l1, l2)


async def test_view_is_readonly(snapshotter, work):
    sn = snapshotter
    await sn.prepare("preparing", "", GC_ROOT)
    await sn.commit("committed", "preparing", GC_ROOT)
    mounts = await sn.view("view", "committed", GC_ROOT)
    with mounted(mounts, work / "view-mount") as target:
        with pytest.raises(OSError):
            (target / "testfile").write_text("testcontent")
    await sn.remove("view")
    await sn.remove("committed")
    # a parentless view is read-only too
    with mounted(await sn.view("empty-view", "", GC_ROOT), work / "empty") as target:
        with pytest.raises(OSError):
            (target / "testfile").write_text("testcontent")


async def test_stat_in_walk(snapshotter):
    sn = snapshotter
    await sn.prepare("stats-in-walk-c1-a", "", GC_ROOT)
    await sn.commit("stats-in-walk-c1", "stats-in-walk-c1-a", GC_ROOT)
    await sn.prepare("stats-in-walk-c2-a", "stats-in-walk-c1", GC_ROOT)
    await sn.commit("stats-in-walk-c2", "stats-in-walk-c2-a", GC_ROOT)
    await sn.prepare("stats-in-walk-a1", "stats-in-walk-c2", GC_ROOT)
    await sn.view("stats-in-walk-v1", "stats-in-walk-c2", GC_ROOT)
    infos = await sn.walk()
    assert len(infos) == 4
    for info in infos:
        assert await sn.stat(info.name) == info


async def test_close_twice(sut):
    sn = sut.snapshotter
    await sn.prepare("n-prepare", "", GC_ROOT)
    await sn.commit("n", "n-prepare", GC_ROOT)
    await sn.remove("n")
    await sn.close()
    await sn.close()


async def test_root_permission(snapshotter, work):
    with mounted(await snapshotter.prepare("preparing", "", GC_ROOT), work / "preparing") as target:
        assert (target.stat().st_mode & 0o777) == 0o755


async def test_128_layers_mount(snapshotter, work):
    sn = snapshotter
    appliers = [
        fstest.apply(
            fstest.create_file("/bottom", b"way at the bottom\n", 0o777),
            fstest.create_file("/overwriteme", b"FIRST!\n", 0o777),
            fstest.create_dir("/ADDHERE", 0o755),
            fstest.create_dir("/ONLYME", 0o755),
            fstest.create_file("/ONLYME/bottom", b"bye!\n", 0o777),
        )
    ]
    for i in range(1, 128):
        appliers.append(fstest.apply(
            fstest.create_file("/overwriteme", f"{i} WAS HERE!\n".encode(), 0o777),
            fstest.create_file(f"/ADDHERE/file-{i}", b"same\n", 0o755),
            fstest.remove_all("/ONLYME"),
            fstest.create_dir("/ONLYME", 0o755),
            fstest.create_file(f"/ONLYME/file-{i}", b"only me!\n", 0o777),
        ))
    flat = work / "flat"
    flat.mkdir()
    parent = ""
    for i, applier in enumerate(appliers):
        key = str(work / f"prepare-layer-{i}")
        mounts = await sn.prepare(key, parent, GC_ROOT)
        with mounted(mounts, work / f"prepare-layer-{i}") as target:
            fstest.check_directory_equal(flat, target)
            applier(flat)
            applier(target)
            fstest.check_directory_equal(flat, target)
        parent = str(work / f"committed-{i}")
        await sn.commit(parent, key, GC_ROOT)
    mounts = await sn.view(str(work / "fullview"), parent, GC_ROOT)
    if mounts[0].type == "overlay":
        assert sum(len(o) for o in mounts[0].options) > os.sysconf("SC_PAGE_SIZE")  # really needs compaction
    with mounted(mounts, work / "fullview") as target:
        fstest.check_directory_equal(flat, target)
        assert (target / "overwriteme").read_text() == "127 WAS HERE!\n"
        assert sorted(os.listdir(target / "ONLYME")) == ["file-127"]


async def test_usage(snapshotter, work):
    sn = snapshotter
    mounts = await sn.prepare("active", "", GC_ROOT)
    empty = await sn.usage("active")
    assert empty.inodes == 1  # the snapshot's own root directory
    with mounted(mounts, work / "a") as target:
        (target / "big").write_bytes(os.urandom(1 << 20))
        (target / "dir").mkdir()
        (target / "dir" / "small").write_bytes(b"x")
        os.link(target / "big", target / "dir" / "big-link")  # counted once
        os.sync()
        used = await sn.usage("active")
    assert used.inodes == 4
    assert (1 << 20) <= used.size - empty.size < (1 << 20) + 64 * 1024
    await sn.commit("committed", "active", GC_ROOT)
    assert await sn.usage("committed") == used  # recorded at commit
    await sn.view("view", "committed", GC_ROOT)
    assert await sn.usage("view") == Usage(0, 0)
    mounts = await sn.prepare("child", "committed", GC_ROOT)
    child = await sn.usage("child")
    if mounts[0].type == "overlay":
        assert child.inodes == 1  # only the child's own (empty) upper dir
    with pytest.raises(NotFound):
        await sn.usage("missing")


async def test_mounts_rules(snapshotter):
    sn = snapshotter
    first = await sn.prepare("a", "", GC_ROOT)
    assert await sn.mounts("a") == first
    assert first[0].type == "bind" and "rw" in first[0].options
    await sn.commit("A", "a", GC_ROOT)
    with pytest.raises(FailedPrecondition, match="not active or view"):
        await sn.mounts("A")
    view = await sn.view("v", "A", GC_ROOT)
    assert view[0].type == "bind" and "ro" in view[0].options
    assert await sn.mounts("v") == view
    with pytest.raises(NotFound):
        await sn.mounts("missing")


async def test_commit_rules(snapshotter):
    sn = snapshotter
    await sn.prepare("a", "", GC_ROOT)
    await sn.commit("A", "a", GC_ROOT)
    await sn.prepare("b", "", GC_ROOT)
    with pytest.raises(AlreadyExists):
        await sn.commit("A", "b", GC_ROOT)
    with pytest.raises(NotFound):
        await sn.commit("B", "missing", GC_ROOT)
    await sn.view("v", "A", GC_ROOT)
    with pytest.raises(FailedPrecondition, match="not active"):
        await sn.commit("V", "v", GC_ROOT)
    with pytest.raises(InvalidArgument):
        await sn.commit("C", "b", {"k": "x" * 5000})
    # labels are replaced at commit, never inherited
    await sn.update(Info(name="b", labels={"only-on-active": "1"}), ["labels.only-on-active"])
    await sn.commit("B", "b", {"on-commit": "1"})
    assert (await sn.stat("B")).labels == {"on-commit": "1"}
    assert sorted(i.name for i in await sn.walk()) == ["A", "B", "v"]


async def test_failed_prepare_leaves_no_directory(sut):
    sn = sut.snapshotter
    before = sorted(os.listdir(sut.snapshots_dir))
    await sn.prepare("a", "", GC_ROOT)
    after_one = sorted(os.listdir(sut.snapshots_dir))
    with pytest.raises(AlreadyExists):
        await sn.prepare("a", "", GC_ROOT)
    with pytest.raises(NotFound):
        await sn.prepare("b", "missing-parent", GC_ROOT)
    with pytest.raises(InvalidArgument):
        await sn.prepare("c", "a", GC_ROOT)  # parent not committed
    assert sorted(os.listdir(sut.snapshots_dir)) == after_one
    assert len(after_one) == len(before) + 1
    assert not [n for n in after_one if n.startswith(("new-", "rm-"))]


async def test_cleanup_removes_orphans(sut):
    sn = sut.snapshotter
    await sn.prepare("a", "", GC_ROOT)
    await sn.commit("A", "a", GC_ROOT)
    await sn.prepare("b", "A", GC_ROOT)
    kept = sorted(os.listdir(sut.snapshots_dir))
    for orphan in ("9999", "new-123abc", "rm-7"):
        (sut.snapshots_dir / orphan / "fs" / "deep").mkdir(parents=True)
        (sut.snapshots_dir / orphan / "fs" / "deep" / "file").write_text("x")
    await sn.cleanup()
    assert sorted(os.listdir(sut.snapshots_dir)) == kept
    assert (await sn.stat("b")).parent == "A"
