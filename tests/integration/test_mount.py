"""pycontainerd.mount against the real kernel: binds, read-only binds, overlay, and an
overlay whose option string is longer than a page (compacted to relative paths)."""

from __future__ import annotations

import os

import pytest

from pycontainerd.mount import Mount, is_mountpoint, mount_all, unmount_all
from pycontainerd.sysutil.mounts import PAGE_SIZE

pytestmark = [pytest.mark.root, pytest.mark.integration]


@pytest.fixture
def target(tmp_path):
    t = tmp_path / "target"
    t.mkdir()
    yield t
    unmount_all(str(t))
    assert not is_mountpoint(str(t))


def test_readonly_bind(tmp_path, target):
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("x")
    mount_all([Mount("bind", str(src), ("ro", "rbind"))], str(target))
    assert (target / "f").read_text() == "x"
    with pytest.raises(OSError):
        (target / "g").write_text("no")
    assert not (src / "g").exists()


def test_overlay_with_more_layers_than_a_page_holds(tmp_path, target):
    base = tmp_path / "snapshots-with-a-rather-long-directory-name-to-make-options-long"
    lowers = []
    for i in range(128):
        d = base / str(i) / "fs"
        d.mkdir(parents=True)
        (d / f"layer{i}").write_text(str(i))
        lowers.append(str(d))
    upper, work = base / "up" / "fs", base / "up" / "work"
    upper.mkdir(parents=True)
    work.mkdir()
    opts = (f"lowerdir={':'.join(reversed(lowers))}", f"upperdir={upper}", f"workdir={work}")
    assert len(",".join(opts)) > PAGE_SIZE
    mount_all([Mount("overlay", "overlay", opts)], str(target))
    assert len([n for n in os.listdir(target) if n.startswith("layer")]) == 128
    (target / "new").write_text("upper")
    assert (upper / "new").read_text() == "upper"


def test_failed_mount_leaves_nothing(tmp_path, target):
    with pytest.raises(OSError):
        mount_all([Mount("overlay", "overlay", ("lowerdir=/nonexistent-a:/nonexistent-b",))], str(target))
    assert not is_mountpoint(str(target))
