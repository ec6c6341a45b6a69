"""Layers that need their lower layers (hardlinks to a lower file: copy-up) and layers
applied by a daemon in a user namespace (no CAP_MKNOD, ``userxattr`` overlay).

The lower dirs are overlay upper dirs made by applying layers here; overlayfs itself is
mounted by the integration tests (tests/integration/test_layer_edges.py)."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import tarfile

import pytest

from pycontainerd.archive import apply_layer
from pycontainerd.archive.diff import write_diff
from pycontainerd.errdefs import InvalidArgument
from tests.support.layers import Layer

pytestmark = [pytest.mark.root]


def apply(layer: Layer, root, parents=(), **kw):
    root.mkdir(exist_ok=True)
    return apply_layer(io.BytesIO(layer.tar()), root, overlay_whiteouts=True, parents=parents, **kw)


def L(**kw) -> Layer:
    return Layer(uid=0, gid=0, **kw)


@pytest.fixture
def l1(tmp_path):
    """hl/a = X (owner 7:8, mode 0640, an xattr) with a same-layer link hl/same."""
    root = tmp_path / "l1"
    apply(L().dir("hl").file("hl/a", b"X", mode=0o640, uid=7, gid=8, mtime=1_500_000_000,
                             xattrs={"user.k": b"v"}).hardlink("hl/same", "hl/a"), root)
    return root


def test_hardlink_to_a_lower_file_copies_it_up(tmp_path, l1):
    l2 = tmp_path / "l2"
    apply(L().hardlink("hl/b", "hl/a"), l2, parents=[l1])
    a, b = (l2 / "hl/a").lstat(), (l2 / "hl/b").lstat()
    assert a.st_ino == b.st_ino and a.st_nlink == 2
    assert (l2 / "hl/a").read_bytes() == b"X"
    # the copy keeps the lower file's mode and xattrs; owner and times are then the link
    # header's, set on the shared inode (as for any hardlink entry, as containerd does)
    assert stat.S_IMODE(a.st_mode) == 0o640
    assert os.getxattr(l2 / "hl/a", "user.k") == b"v"
    assert (l1 / "hl/a").lstat().st_nlink == 2  # the lower is read only: untouched
    # a third layer replaces a: the link made in l2 keeps X (C03: a=Y b=X)
    l3 = tmp_path / "l3"
    apply(L().file("hl/a", b"Y"), l3, parents=[l2, l1])
    assert (l3 / "hl/a").read_bytes() == b"Y" and not (l3 / "hl/b").exists()


def test_copy_up_from_the_topmost_lower_that_has_it(tmp_path, l1):
    l2 = tmp_path / "l2"
    apply(L().file("hl/a", b"newer"), l2, parents=[l1])
    l3 = tmp_path / "l3"
    apply(L().hardlink("hl/b", "hl/a"), l3, parents=[l2, l1])
    assert (l3 / "hl/b").read_bytes() == b"newer"


@pytest.mark.parametrize("hide", [
    pytest.param(lambda: L().whiteout("hl/a"), id="whiteout"),
    pytest.param(lambda: L().whiteout("hl"), id="parent-whiteout"),
    pytest.param(lambda: L().opaque("hl").file("hl/other", b"o"), id="opaque-parent"),
    pytest.param(lambda: L().file("hl", b"now a file"), id="parent-replaced-by-a-file"),
])
def test_target_hidden_by_a_higher_lower_is_not_found(tmp_path, l1, hide):
    l2 = tmp_path / "l2"
    apply(hide(), l2, parents=[l1])
    l3 = tmp_path / "l3"
    with pytest.raises(InvalidArgument, match="not found"):
        apply(L().hardlink("hl/b", "hl/a"), l3, parents=[l2, l1])


def test_target_whited_out_by_the_same_layer_is_not_found(tmp_path, l1):
    with pytest.raises(InvalidArgument, match="not found"):
        apply(L().whiteout("hl/a").hardlink("hl/b", "hl/a"), tmp_path / "l2", parents=[l1])


def test_missing_target_and_directory_target(tmp_path, l1):
    with pytest.raises(InvalidArgument, match="not found"):
        apply(L().hardlink("hl/b", "hl/nothing"), tmp_path / "l2", parents=[l1])
    with pytest.raises(InvalidArgument, match="directory"):
        apply(L().hardlink("b", "hl"), tmp_path / "l3", parents=[l1])


def test_copy_up_of_a_symlink_and_through_a_symlinked_parent(tmp_path):
    l1 = tmp_path / "l1"
    apply(L().dir("usr").dir("usr/lib").file("usr/lib/x", b"libx").symlink("lib", "usr/lib")
          .symlink("usr/lib/s", "x"), l1)
    l2 = tmp_path / "l2"
    apply(L().hardlink("y", "lib/x").hardlink("t", "usr/lib/s"), l2, parents=[l1])
    # copied up at its real path, not under a directory shadowing the lower symlink
    assert not (l2 / "lib").exists()
    assert (l2 / "usr/lib/x").lstat().st_ino == (l2 / "y").lstat().st_ino
    assert os.readlink(l2 / "t") == "x" and (l2 / "t").lstat().st_ino == (l2 / "usr/lib/s").lstat().st_ino


def test_diff_of_a_link_to_a_lower_file_emits_the_data_once(tmp_path, l1):
    """What a container's ``ln`` leaves in its upper dir (overlay copied the file up)."""
    upper = tmp_path / "upper"
    apply(L().hardlink("hl/c", "hl/a"), upper, parents=[l1])
    out = io.BytesIO()
    write_diff(str(l1), str(upper), out, "none", overlay_upper=True)
    seen, data = [], {}
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tf:
        for m in tf.getmembers():
            if m.islnk():
                assert m.linkname in data, f"{m.name} links to {m.linkname}, not an earlier file"
            elif m.isreg():
                data[m.name] = tf.extractfile(m).read()
            seen.append(m.name)
    assert len(seen) == len(set(seen))
    assert list(data.values()) == [b"X"]


# --- a daemon in a user namespace ----------------------------------------------------------

_IN_USERNS = r"""
import io, json, os, stat, sys
from pycontainerd.archive import apply_layer
from pycontainerd.fsutil import running_in_userns
lower, upper, layer = sys.argv[1:4]
with open(layer, "rb") as f:
    apply_layer(f, upper, overlay_whiteouts=True, parents=[lower], userxattr=True)
out = {"userns": running_in_userns()}
for name in ("fifo", "null", "loop7", "etc/gone"):
    try:
        st = os.lstat(os.path.join(upper, name))
        out[name] = [stat.S_IFMT(st.st_mode), st.st_rdev]
    except FileNotFoundError:
        out[name] = None
out["opaque"] = os.getxattr(os.path.join(upper, "etc"), "user.overlay.opaque").decode()
print(json.dumps(out))
"""


def test_special_files_in_a_user_namespace(tmp_path):
    """As under ``unshare -Urm`` (the corpus's rootless daemon): the FIFO is made, device
    nodes are skipped with a warning, whiteouts and opaque dirs still take effect."""
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    apply(L().dir("etc").file("etc/old", b"o").file("etc/gone", b"g"), lower)
    upper.mkdir()
    layer = tmp_path / "layer.tar"
    layer.write_bytes(L().fifo("fifo").device("null", "char", 1, 3).device("loop7", "block", 7, 7)
                      .dir("etc").opaque("etc").file("etc/new", b"n").whiteout("etc/gone").tar())
    for p in (tmp_path, lower, upper):
        os.chmod(p, 0o777)
    proc = subprocess.run(["unshare", "-Urm", sys.executable, "-c", _IN_USERNS, str(lower), str(upper), str(layer)],
                          capture_output=True, text=True, timeout=60, cwd=os.getcwd())
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["userns"] is True
    assert out["fifo"] == [stat.S_IFIFO, 0]
    assert out["null"] is None and out["loop7"] is None
    assert "device node skipped" in proc.stdout + proc.stderr
    assert out["etc/gone"] == [stat.S_IFCHR, 0]  # a whiteout device, made without CAP_MKNOD
    assert out["opaque"] == "y"
    assert not os.path.exists(upper / "etc/.wh..wh..opq")
