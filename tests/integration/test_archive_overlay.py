"""Layers applied onto real overlayfs upper dirs, checked through a real overlay mount, against
a plain-directory apply, and against ``umoci unpack`` of an OCI image made of the same
layers; and write_diff of an overlay upper dir (single walk) and of mounted views (double
walk), round-tripped through apply.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
from contextlib import contextmanager

import pytest

from pycontainerd.archive import apply_layer
from pycontainerd.archive.diff import write_diff
from pycontainerd.errdefs import FailedPrecondition
from pycontainerd.mount import Mount, mount_all, unmount_all
from tests.support.layers import Layer, gz, sha256, tree, tree_diff

pytestmark = [pytest.mark.root, pytest.mark.integration]

CAP = bytes.fromhex("0100000200200000000000000000000000000000")


def layer1() -> bytes:
    return (Layer(uid=0, gid=0)
            .dir("bin", 0o755).dir("etc", 0o755).dir("tmp", 0o1777, mtime=1_500_000_000)
            .dir("usr/share/doc", 0o755).dir("var/log", 0o755)
            .dir("home/user", 0o700, uid=1000, gid=1000)
            .file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n")
            .file("etc/group", b"root:x:0:\n")
            .file("etc/hostname", b"box\n", xattrs={"user.origin": b"layer1"})
            .file("bin/busybox", b"\x7fELF busybox v1", 0o755)
            .hardlink("bin/sh", "bin/busybox", 0o755)
            .symlink("bin/ls", "busybox")
            .file("bin/su", b"\x7fELF su", 0o4755)
            .file("bin/ping", b"\x7fELF ping", 0o755, xattrs={"security.capability": CAP})
            .file("usr/share/doc/a", b"doc a")
            .file("usr/share/doc/sub/b", b"doc b")
            .file("var/log/old.log", b"old")
            .device("dev/null", "char", 1, 3, 0o666)
            .fifo("run/initctl", 0o600)
            .file("home/user/.bashrc", b"# bashrc", 0o644, uid=1000, gid=1000)
            .tar())


def layer2() -> bytes:
    return (Layer(uid=0, gid=0)
            .whiteout("etc/group")
            .file("etc/new.conf", b"v1")
            .opaque("usr/share/doc")
            .file("usr/share/doc/only", b"only doc")
            .file("bin/busybox", b"\x7fELF busybox v2", 0o755)
            .file("home/user/.profile", b"# profile", 0o600, uid=1000, gid=1000)  # implicit parent
            .tar())


def layer3() -> bytes:
    return (Layer(uid=0, gid=0)
            .whiteout("var")
            .dir("var", 0o755)
            .file("var/new", b"recreated")
            .file("etc/new.conf", b"v2")
            .file("usr/share/doc", b"a file over a directory")
            .file("tmp/x", b"x", 0o600)
            .symlink("bin/ls", "/bin/busybox")
            .file("opt/app/run", b"#!/bin/sh\n", 0o755)
            .tar())


LAYERS = [layer1, layer2, layer3]


@contextmanager
def overlay(target, lowers, upper=None, work=None):
    opts = ["lowerdir=" + ":".join(str(p) for p in lowers)]
    if upper is not None:
        opts += [f"upperdir={upper}", f"workdir={work}"]
    os.makedirs(target, exist_ok=True)
    mount_all([Mount(type="overlay", source="overlay", options=opts)], str(target))
    try:
        yield target
    finally:
        unmount_all(str(target))


def stack_layers(base, blobs):
    """Apply each blob onto a fresh upper dir (overlay whiteouts), lowers = previous uppers."""
    uppers = []
    for i, blob in enumerate(blobs):
        upper = base / f"upper{i}"
        upper.mkdir()
        res = apply_layer(io.BytesIO(blob), upper, overlay_whiteouts=True, parents=list(reversed(uppers)))
        assert res.diff_id.startswith("sha256:")
        uppers.append(upper)
    return list(reversed(uppers))  # topmost first, as overlay's lowerdir


def mount_view(base, uppers, name="merged"):
    if len(uppers) == 1:  # overlay needs two lowers without an upper: use a bind-like copy
        return overlay(base / name, [*uppers, base / "empty-lower"])
    return overlay(base / name, uppers)


@pytest.fixture
def base(tmp_path):
    (tmp_path / "empty-lower").mkdir()
    yield tmp_path


def check_expected(view):
    assert sorted(os.listdir(view / "etc")) == ["hostname", "new.conf", "passwd"]
    assert (view / "etc/new.conf").read_bytes() == b"v2"
    assert (view / "usr/share/doc").read_bytes() == b"a file over a directory"
    assert sorted(os.listdir(view / "var")) == ["new"]
    assert (view / "bin/busybox").read_bytes() == b"\x7fELF busybox v2"
    assert (view / "bin/sh").read_bytes() == b"\x7fELF busybox v1"
    assert os.readlink(view / "bin/ls") == "/bin/busybox"
    assert stat.S_IMODE((view / "bin/su").stat().st_mode) == 0o4755
    assert os.getxattr(view / "bin/ping", "security.capability") == CAP
    assert os.getxattr(view / "etc/hostname", "user.origin") == b"layer1"
    st = (view / "home/user").stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o700, 1000, 1000)
    assert sorted(os.listdir(view / "home/user")) == [".bashrc", ".profile"]
    st = (view / "tmp").stat()
    assert stat.S_IMODE(st.st_mode) == 0o1777
    dev = (view / "dev/null").lstat()
    assert stat.S_ISCHR(dev.st_mode) and dev.st_rdev == os.makedev(1, 3)
    assert stat.S_ISFIFO((view / "run/initctl").lstat().st_mode)
    assert not any(n.startswith(".wh.") for _, ds, fs in os.walk(view) for n in ds + fs)


def test_overlay_stack_equals_plain_apply(base):
    blobs = [gz(f()) for f in LAYERS]
    uppers = stack_layers(base, blobs)
    assert os.getxattr(uppers[1] / "usr/share/doc", "trusted.overlay.opaque") == b"y"
    assert stat.S_ISCHR((uppers[1] / "etc/group").lstat().st_mode)
    assert os.getxattr(uppers[0] / "var", "trusted.overlay.opaque") == b"y"

    plain = base / "plain"
    plain.mkdir()
    for blob in blobs:
        apply_layer(io.BytesIO(blob), plain, overlay_whiteouts=False)
    check_expected(plain)

    with mount_view(base, uppers) as view:
        check_expected(view)
        merged = tree(view, dir_mtimes=False)
    want = tree(plain, dir_mtimes=False)
    del merged["."], want["."]
    assert merged == want, tree_diff(merged, want)


def _oci_layout(path, blobs):
    os.makedirs(path / "blobs/sha256")

    def put(data: bytes) -> tuple[str, int]:
        d = hashlib.sha256(data).hexdigest()
        (path / "blobs/sha256" / d).write_bytes(data)
        return "sha256:" + d, len(data)

    layers = []
    diff_ids = []
    for blob in blobs:
        d, n = put(gz(blob))
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": n})
        diff_ids.append(sha256(blob))
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    cd, cn = put(config)
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd,
                                      "size": cn},
                           "layers": layers}).encode()
    md, mn = put(manifest)
    (path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (path / "index.json").write_text(json.dumps({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": mn,
                       "annotations": {"org.opencontainers.image.ref.name": "test"}}]}))


def test_same_tree_as_umoci_unpack(base):
    if shutil.which("umoci") is None:
        pytest.fail("umoci is not installed (apt-get install umoci)")
    tars = [f() for f in LAYERS]
    _oci_layout(base / "image", tars)
    bundle = base / "bundle"
    subprocess.run(["umoci", "unpack", "--image", f"{base / 'image'}:test", str(bundle)], check=True,
                   capture_output=True)
    plain = base / "plain"
    plain.mkdir()
    for blob in tars:
        apply_layer(io.BytesIO(blob), plain, overlay_whiteouts=False)
    theirs = tree(bundle / "rootfs", dir_mtimes=False)
    ours = tree(plain, dir_mtimes=False)
    del theirs["."], ours["."]
    assert ours == theirs, tree_diff(ours, theirs)
    uppers = stack_layers(base, [gz(t) for t in tars])
    with mount_view(base, uppers) as view:
        merged = tree(view, dir_mtimes=False)
    del merged["."]
    assert merged == theirs, tree_diff(merged, theirs)


def _change_through_mount(view):
    """Changes a container could make, written through the overlay mount."""
    os.unlink(view / "etc/passwd")
    shutil.rmtree(view / "home/user")
    os.mkdir(view / "home/user", 0o750)  # overlay makes it opaque
    (view / "home/user/new").write_text("fresh")
    (view / "etc/hostname").write_text("renamed\n")
    os.setxattr(view / "etc/hostname", "user.changed", b"yes")
    os.chmod(view / "bin/su", 0o755)
    os.chown(view / "tmp/x", 1000, 1000)
    (view / "opt/app/data").write_bytes(os.urandom(100_000))
    os.link(view / "opt/app/data", view / "opt/app/data.link")
    os.symlink("../app/run", view / "opt/run-link")
    os.mkfifo(view / "opt/fifo")
    os.mknod(view / "opt/tty", 0o620 | stat.S_IFCHR, os.makedev(5, 0))
    shutil.rmtree(view / "var")
    (view / "bin/busybox").write_bytes(b"\x7fELF busybox v3")


@pytest.mark.parametrize("mode", ["overlay-upper", "double-walk"])
def test_write_diff_roundtrip_from_overlay(base, mode):
    uppers = stack_layers(base, [gz(f()) for f in LAYERS])
    upper = base / "rw-upper"
    work = base / "rw-work"
    upper.mkdir()
    work.mkdir()
    with overlay(base / "rw", uppers, upper, work) as view:
        _change_through_mount(view)
        want = tree(view)
    out = io.BytesIO()
    with mount_view(base, uppers, "lower-view") as lower_view:
        if mode == "overlay-upper":
            res = write_diff(lower_view, upper, out, "gzip", overlay_upper=True)
        else:
            with overlay(base / "upper-view", [upper, *uppers]) as upper_view:
                res = write_diff(lower_view, upper_view, out, "gzip")
        copy = base / "copy"
        subprocess.run(["cp", "-a", "--", str(lower_view), str(copy)], check=True)
    applied = apply_layer(io.BytesIO(out.getvalue()), copy, overlay_whiteouts=False)
    assert applied.diff_id == res.diff_id
    got = tree(copy)
    for t in (want, got):
        t.pop(".")
    assert got == want, tree_diff(got, want)

    # the same diff applied as a new overlay layer gives the same merged view
    new_upper = base / "new-upper"
    new_upper.mkdir()
    apply_layer(io.BytesIO(out.getvalue()), new_upper, overlay_whiteouts=True, parents=uppers)
    with overlay(base / "check", [new_upper, *uppers]) as view:
        again = tree(view)
    again.pop(".")
    assert again == want, tree_diff(again, want)


def test_write_diff_refuses_redirect_upper(base):
    upper = base / "upper"
    (upper / "d").mkdir(parents=True)
    os.setxattr(upper / "d", "trusted.overlay.redirect", b"/old")
    with pytest.raises(FailedPrecondition):
        write_diff(None, upper, io.BytesIO(), "gzip", overlay_upper=True)
