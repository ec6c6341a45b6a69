"""Hostile layers: nothing outside the apply root is ever created, modified, chowned,
chmodded, linked or removed.

Every test applies into ``<tmp>/root`` next to a canary directory ``<tmp>/outside`` (files,
a subdirectory, a symlink); afterwards the canary must be byte-for-byte and stat-for-stat
the same (content, mode, owner, mtime, ctime, inode, link count), ``<tmp>`` must hold
nothing new, and the absolute paths the layer aimed at must not exist. The apply itself
must either succeed with everything contained in root, or fail with InvalidArgument.
"""

from __future__ import annotations

import io
import os
import stat
import tempfile
import uuid
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pycontainerd.archive import apply_layer
from pycontainerd.errdefs import InvalidArgument
from tests.support.layers import Layer, gz, tree


def make_canary(outside: str) -> None:
    os.mkdir(outside, 0o755)
    with open(os.path.join(outside, "victim"), "wb") as f:
        f.write(b"precious\n")
    os.chmod(os.path.join(outside, "victim"), 0o600)
    os.mkdir(os.path.join(outside, "sub"), 0o700)
    with open(os.path.join(outside, "sub", "deep"), "wb") as f:
        f.write(b"deep\n")
    os.symlink("victim", os.path.join(outside, "link-to-victim"))
    for dirpath, dirnames, filenames in os.walk(outside):
        for n in dirnames + filenames:
            os.utime(os.path.join(dirpath, n), (1_000_000_000, 1_000_000_000), follow_symlinks=False)
    os.utime(outside, (1_000_000_000, 1_000_000_000))


def _stat_key(path: str) -> tuple:
    st = os.lstat(path)
    return (st.st_ino, st.st_mode, st.st_uid, st.st_gid, st.st_nlink, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@contextmanager
def arena(base: str | None = None):
    """``(root, outside, check)``: ``check()`` asserts that nothing escaped."""
    with tempfile.TemporaryDirectory(dir=base) as tmp:
        root = os.path.join(tmp, "root")
        outside = os.path.join(tmp, "outside")
        os.mkdir(root)
        make_canary(outside)
        before = tree(outside, inodes=True)
        tmp_before = sorted(os.listdir(tmp))
        parent_before = os.stat(tmp)
        etc_passwd = _stat_key("/etc/passwd")

        def check():
            after = tree(outside, inodes=True)
            assert after == before, [k for k in set(before) | set(after) if before.get(k) != after.get(k)]
            assert sorted(os.listdir(tmp)) == tmp_before
            st = os.stat(tmp)
            assert (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns) == (
                parent_before.st_mode, parent_before.st_uid, parent_before.st_gid, parent_before.st_mtime_ns)
            assert _stat_key("/etc/passwd") == etc_passwd
            for dirpath, dirnames, filenames in os.walk(root):  # nothing inside points at a victim inode
                for n in filenames:
                    assert os.lstat(os.path.join(dirpath, n)).st_ino != before["victim"][7]

        yield root, outside, check


def run(layer: bytes, root: str, overlay: bool = False) -> bool:
    """Apply; True on success, False on InvalidArgument (any other error fails the test)."""
    try:
        apply_layer(io.BytesIO(layer), root, overlay_whiteouts=overlay, sync=False)
        return True
    except InvalidArgument:
        return False


def evil_name() -> str:
    return f"pcd-evil-{uuid.uuid4().hex}"


# --- one scenario per classic escape -----------------------------------------------------


def test_dotdot_names():
    with arena() as (root, outside, check):
        ev = evil_name()
        assert run(Layer().file(f"../{ev}", b"x").file(f"a/../../{ev}2", b"x").file("../outside/victim", b"pwn")
                   .file("../../../../../../tmp/" + ev, b"x").tar(), root)
        check()
        assert open(os.path.join(root, ev), "rb").read() == b"x"
        assert open(os.path.join(root, ev + "2"), "rb").read() == b"x"
        assert open(os.path.join(root, "outside/victim"), "rb").read() == b"pwn"
        assert os.path.exists(os.path.join(root, "tmp", ev))
        assert not os.path.exists("/tmp/" + ev)


def test_absolute_names():
    with arena() as (root, outside, check):
        ev = evil_name()
        assert run(Layer().file(f"/tmp/{ev}", b"x").file(outside + "/victim", b"pwn").tar(), root)
        check()
        assert not os.path.exists(f"/tmp/{ev}")
        assert open(os.path.join(root, outside.lstrip("/"), "victim"), "rb").read() == b"pwn"


@pytest.mark.parametrize("target", ["ABS", "../../..", "../outside", "/../../..", "../../../../../..", "/"])
def test_symlink_then_write_through(target):
    with arena() as (root, outside, check):
        target = target.replace("ABS", outside)
        ok = run(Layer().symlink("link", target)
                 .file("link/victim", b"pwn")
                 .file("link/outside/victim", b"pwn")
                 .dir("link/sub", 0o777)
                 .file("link/new", b"new")
                 .tar(), root)
        assert ok
        check()


def test_symlink_chain_and_relative_escape():
    with arena() as (root, outside, check):
        assert run(Layer().dir("a/b")
                   .symlink("a/b/up", "../../../../..")
                   .symlink("l1", "l2")
                   .symlink("l2", "a/b/up/outside")
                   .file("l1/victim", b"pwn")
                   .file("a/b/up/outside/sub/deep", b"pwn")
                   .tar(), root)
        check()


def test_symlink_planted_then_regular_file_at_its_name():
    with arena() as (root, outside, check):
        victim = os.path.join(outside, "victim")
        assert run(Layer().symlink("f", victim).file("f", b"pwn", 0o777)
                   .symlink("g", "../outside/victim").file("g", b"pwn").tar(), root)
        check()
        assert open(os.path.join(root, "f"), "rb").read() == b"pwn"


def test_symlink_loop_refused():
    with arena() as (root, outside, check):
        assert not run(Layer().symlink("a", "b").symlink("b", "a").file("a/x", b"x").tar(), root)
        check()


def test_symlink_with_empty_target_refused():
    # found by test_fuzz_apply: symlink(2) says ENOENT for an empty target; a clear
    # InvalidArgument naming the entry instead
    with arena() as (root, outside, check):
        with pytest.raises(InvalidArgument, match="empty target"):
            apply_layer(io.BytesIO(Layer().symlink("d/e", "").tar()), root, overlay_whiteouts=False, sync=False)
        check()


@pytest.mark.parametrize("linkname", ["/etc/passwd", "../outside/victim", "ABS/victim", "../../../../etc/passwd",
                                      "link/victim", "ABS"])
def test_hardlink_outside(linkname):
    with arena() as (root, outside, check):
        linkname = linkname.replace("ABS", outside)
        ok = run(Layer().symlink("link", outside).hardlink("h", linkname, 0o777).tar(), root)
        assert not ok  # nothing of that name inside root
        check()


def test_hardlink_to_symlink_links_the_symlink_itself():
    with arena() as (root, outside, check):
        victim = os.path.join(outside, "victim")
        assert run(Layer().symlink("s", victim)
                   .hardlink("h", "s", 0o777, mtime=5)  # chmod/utime must not reach the victim
                   .tar(), root)
        check()
        assert os.readlink(os.path.join(root, "h")) == victim
        assert os.lstat(os.path.join(root, "h")).st_ino == os.lstat(os.path.join(root, "s")).st_ino


def test_hardlink_inside_via_symlinked_parent_stays_inside():
    with arena() as (root, outside, check):
        assert run(Layer().dir("real").file("real/f", b"f").symlink("l", "/real")
                   .hardlink("h", "l/f").tar(), root)
        check()
        assert os.stat(os.path.join(root, "h")).st_ino == os.stat(os.path.join(root, "real/f")).st_ino


def test_whiteouts_aimed_outside():
    with arena() as (root, outside, check):
        assert run(Layer().symlink("link", outside)
                   .file("../.wh.outside", b"")
                   .file("../outside/.wh.victim", b"")
                   .file("link/.wh.victim", b"")
                   .file("link/.wh.sub", b"")
                   .file("link/.wh..wh..opq", b"")
                   .file("/.wh.tmp", b"")
                   .tar(), root)
        check()
        assert not run(Layer().file(".wh...", b"").tar(), root)
        check()


def test_opaque_through_symlink_to_outside():
    with arena() as (root, outside, check):
        assert run(Layer().symlink("link", outside).file("link/.wh..wh..opq", b"").tar(), root)
        check()
        assert run(Layer().symlink("up", "../..").file("up/.wh..wh..opq", b"").tar(), root)
        check()


def test_directory_entry_replacing_symlink_to_outside():
    with arena() as (root, outside, check):
        assert run(Layer().symlink("d", outside).dir("d", 0o777, mtime=7).file("d/victim", b"pwn").tar(), root)
        check()
        assert os.path.isdir(os.path.join(root, "d")) and not os.path.islink(os.path.join(root, "d"))


def test_symlink_entry_metadata_does_not_follow():
    with arena() as (root, outside, check):
        assert run(Layer().symlink("s", os.path.join(outside, "victim"), mtime=123,
                                   xattrs={"user.x": b"y"}).tar(), root)
        check()
        assert os.lstat(os.path.join(root, "s")).st_mtime == 123


def test_replacing_existing_outside_pointing_dir_symlink_in_lower():
    with arena() as (root, outside, check):
        os.symlink(outside, os.path.join(root, "lowerlink"))  # planted by a lower layer
        assert run(Layer().file("lowerlink/victim", b"pwn").dir("lowerlink/sub", 0o777)
                   .file(".wh.lowerlink", b"").tar(), root)
        check()


def test_nul_in_names_refused():
    with arena() as (root, outside, check):
        assert not run(Layer().file("ok", b"x", pax={"path": "a\x00/../../outside/victim"}).tar(), root)
        assert not run(Layer().symlink("s", "x", pax={"linkpath": "/etc\x00passwd"}).tar(), root)
        check()


def test_gzip_layer_with_escapes():
    with arena() as (root, outside, check):
        assert run(gz(Layer().symlink("l", "../..").file("l/outside/victim", b"pwn").tar()), root)
        check()


@pytest.mark.root
def test_device_nodes_escaping():
    with arena() as (root, outside, check):
        assert run(Layer(uid=0, gid=0).symlink("dev", outside)
                   .device("dev/victim", "char", 1, 3)
                   .device("../outside/sub", "block", 7, 0)
                   .fifo("dev/sub/fifo")
                   .tar(), root)
        check()
        assert stat.S_ISCHR(os.lstat(os.path.join(root, outside.lstrip("/"), "victim")).st_mode)


@pytest.mark.root
def test_overlay_mode_whiteouts_and_owners_contained():
    with arena() as (root, outside, check):
        assert run(Layer(uid=0, gid=0).symlink("link", outside)
                   .file("link/.wh.victim", b"", uid=4242, gid=4242)
                   .file("link/.wh..wh..opq", b"")
                   .file("link/sub/f", b"x", uid=4242, gid=4242, mode=0o4777)
                   .hardlink("h", "link/sub/f", uid=0, gid=0)
                   .tar(), root, overlay=True)
        check()
        contained = os.path.join(root, outside.lstrip("/"))
        assert stat.S_ISCHR(os.lstat(os.path.join(contained, "victim")).st_mode)
        assert os.getxattr(contained, "trusted.overlay.opaque") == b"y"


# --- property: random names and symlinks never write outside -------------------------------

COMPONENTS = ["..", ".", "", "a", "b", "link", "l2", "victim", "outside", "sub", ".wh.a", ".wh.link",
              ".wh.victim", ".wh..wh..opq"]
TARGETS = ["/", "..", "../..", "../../..", "OUT", "OUT/sub", "OUT/victim", "a", "/a/../..", "link", ".", "l2",
           "../outside", "/link", "sub/../../.."]


def _names():
    comps = st.lists(st.sampled_from(COMPONENTS), min_size=1, max_size=5)
    return st.builds(lambda lead, cs: ("/" if lead else "") + "/".join(cs), st.booleans(), comps)


def _targets():
    return st.lists(st.sampled_from(TARGETS), min_size=1, max_size=3).map("/".join)


ENTRY = st.one_of(
    st.tuples(st.just("file"), _names(), st.integers(0, 0o7777)),
    # owner rwx kept so that an unprivileged run can keep writing below (root ignores modes)
    st.tuples(st.just("dir"), _names(), st.integers(0, 0o7777).map(lambda m: m | 0o700)),
    st.tuples(st.just("symlink"), _names(), _targets()),
    st.tuples(st.just("hardlink"), _names(), _targets()),
)


def build(entries, outside: str) -> bytes:
    layer = Layer()
    for kind, name, arg in entries:
        if kind == "file":
            layer.file(name, b"pwn", arg)
        elif kind == "dir":
            layer.dir(name, arg)
        elif kind == "symlink":
            layer.symlink(name, arg.replace("OUT", outside))
        else:
            layer.hardlink(name, arg.replace("OUT", outside), 0o777)
    return layer.tar()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ENTRY, min_size=1, max_size=12))
def test_property_never_escapes_plain(entries):
    with arena() as (root, outside, check):
        run(build(entries, outside), root)
        check()


@pytest.mark.root
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ENTRY, min_size=1, max_size=12))
def test_property_never_escapes_overlay(entries):
    with arena() as (root, outside, check):
        run(build(entries, outside), root, overlay=True)
        check()


def test_harness_detects_an_escape():
    """The canary check itself: a naive extractor (plain tarfile, no filter) is caught."""
    import tarfile

    with arena() as (root, outside, check):
        tar = Layer().symlink("link", outside).file("link/victim", b"pwn").tar()
        with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
            for m in tf:
                # the filter argument exists from Python 3.11.4 on (Debian 12 has 3.11.2)
                extra = {"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}
                tf.extract(m, root, set_attrs=False, **extra)
        with pytest.raises(AssertionError):
            check()
