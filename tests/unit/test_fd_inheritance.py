"""The daemon's metadata files never reach its children.

LMDB opens its data file without ``O_CLOEXEC`` and the daemon spawns its children through
uvloop, which closes only close-on-exec descriptors; a shim zygote, every shim, runc and the
CNI plugins held the daemon's ``data.mdb`` files open until the stores marked them."""

from __future__ import annotations

import os
import subprocess
import sys

from pycontainerd.fsutil import cloexec_fds_under
from pycontainerd.metadata.db import MetadataDB
from pycontainerd.snapshots.storage import MetaStore


def _inheritable_under(directory) -> list[str]:
    prefix = os.path.join(os.path.realpath(directory), "")
    found = []
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
            if target.startswith(prefix) and os.get_inheritable(int(name)):
                found.append(target)
        except OSError:
            continue
    return found


def test_metadata_and_snapshot_stores_leave_no_inheritable_descriptor(tmp_path) -> None:
    db = MetadataDB(tmp_path / "meta")
    store = MetaStore(tmp_path / "snap")
    try:
        assert _inheritable_under(tmp_path) == []
        # and a child spawned without closing descriptors (as libuv does) sees none of them
        out = subprocess.run(
            [sys.executable, "-c", "import os; print(sorted(os.readlink('/proc/self/fd/' + f) for f in "
                                   "os.listdir('/proc/self/fd') if os.path.exists('/proc/self/fd/' + f)))"],
            close_fds=False, capture_output=True, text=True, check=True).stdout
        assert str(tmp_path) not in out
    finally:
        store.close()
        db.close()


def test_cloexec_fds_under_marks_only_that_folder(tmp_path) -> None:
    (tmp_path / "a").mkdir()
    inside = os.open(tmp_path / "a" / "f", os.O_CREAT | os.O_RDWR)
    outside = os.open(tmp_path / "g", os.O_CREAT | os.O_RDWR)
    try:
        os.set_inheritable(inside, True)
        os.set_inheritable(outside, True)
        assert cloexec_fds_under(tmp_path / "a") == [inside]
        assert not os.get_inheritable(inside)
        assert os.get_inheritable(outside)
        assert cloexec_fds_under(tmp_path / "a") == []  # already marked
    finally:
        os.close(inside)
        os.close(outside)
