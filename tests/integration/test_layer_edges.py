"""Layers from the edges, pulled and run by Debian's ctr through our daemon: images built
by umoci and skopeo (tools we did not write) from inputs made here, pushed to the test
registry.

- ``umoci insert`` layers: end right after the last file's data (no padding, no
  end-of-archive blocks); containerd's Go reader takes them, so must we (issue 13).
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

import pytest

from tests.interop.test_ctr_foundation import ctr
from tests.support.registry import _run, _tool, native_platform

pytestmark = [pytest.mark.root]


def _base_layer(path: Path) -> Path:
    """busybox with the applets the tests use."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for d in ("bin", "etc", "opt"):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tf.addfile(info)
        data = Path("/bin/busybox").read_bytes()
        info = tarfile.TarInfo("bin/busybox")
        info.size, info.mode = len(data), 0o755
        tf.addfile(info, io.BytesIO(data))
        for applet in ("sh", "cat", "ls", "stat", "head", "ln"):
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname, info.mode = tarfile.SYMTYPE, "busybox", 0o777
            tf.addfile(info)
    return path


def _new_image(work: Path) -> str:
    """An OCI layout ``work/layout:img`` holding the busybox layer; returns ``layout:img``."""
    umoci = _tool("umoci", "umoci")
    os_, arch, _ = native_platform()
    layout = f"{work}/layout:img"
    _run(umoci, "init", "--layout", str(work / "layout"))
    _run(umoci, "new", "--image", layout)
    _run(umoci, "raw", "add-layer", "--image", layout, str(_base_layer(work / "base.tar")))
    _run(umoci, "config", "--image", layout, "--config.cmd", "sh", "--os", os_, "--architecture", arch)
    return layout


def _push(work: Path, layout: str, registry, name: str) -> str:
    skopeo = _tool("skopeo", "skopeo")
    ref = f"{registry.host}/edges/{name}:latest"
    _run(skopeo, "copy", "--quiet", "--dest-tls-verify=false", f"oci:{layout}", f"docker://{ref}")
    return ref


@pytest.fixture(scope="module")
def workdir():
    work = Path(tempfile.mkdtemp(prefix="pcd-edges-"))
    yield work
    shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def umoci_inserted(registry, workdir) -> str:
    work = workdir / "inserted"
    work.mkdir()
    layout = _new_image(work)
    umoci = _tool("umoci", "umoci")
    (work / "f.txt").write_bytes(b"hello from umoci insert\n")  # 24 bytes: 488 of padding missing
    tree = work / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub/g").write_bytes(b"g" * 700)
    (tree / "exact").write_bytes(b"e" * 1024)
    _run(umoci, "insert", "--image", layout, str(work / "f.txt"), "/etc/f.txt")
    _run(umoci, "insert", "--image", layout, str(tree), "/opt/tree")
    return _push(work, layout, registry, "umoci-insert")


def _last_layers_unpadded(workdir: Path) -> bool:
    """Sanity: umoci really wrote layers ending right after a file's data."""
    import gzip

    blobs = workdir / "inserted/layout/blobs/sha256"
    ends = []
    for blob in blobs.iterdir():
        raw = blob.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            tar = gzip.decompress(raw)
            ends.append(len(tar) % 512 != 0)
    return any(ends)


def test_umoci_insert_layers_pull_and_run_through_ctr(ctr_bin, daemon, umoci_inserted, workdir):
    assert _last_layers_unpadded(workdir)
    ctr(ctr_bin, daemon, "images", "pull", "--plain-http", umoci_inserted)
    out = ctr(ctr_bin, daemon, "run", "--rm", umoci_inserted, "umoci-insert", "sh", "-c",
              "cat /etc/f.txt; head -c 3 /opt/tree/sub/g; echo; stat -c %s /opt/tree/sub/g /opt/tree/exact").stdout
    assert out.splitlines() == ["hello from umoci insert", "ggg", "700", "1024"]
    snaps = ctr(ctr_bin, daemon, "snapshots", "ls").stdout.splitlines()[1:]
    assert len(snaps) == 3 and all(line.split()[-1] == "Committed" for line in snaps)


def test_umoci_insert_layer_in_a_docker_archive_imports_and_runs(ctr_bin, daemon, umoci_inserted, workdir):
    """The import path: ctr exports the pulled image, then imports it into a fresh namespace."""
    ctr(ctr_bin, daemon, "images", "pull", "--plain-http", umoci_inserted)
    archive = workdir / "export.tar"
    ctr(ctr_bin, daemon, "images", "export", str(archive), umoci_inserted)
    ctr(ctr_bin, daemon, "images", "import", str(archive), ns="edges-import")
    out = ctr(ctr_bin, daemon, "run", "--rm", umoci_inserted, "imported", "cat", "/etc/f.txt",
              ns="edges-import").stdout
    assert out == "hello from umoci insert\n"
    os.unlink(archive)
