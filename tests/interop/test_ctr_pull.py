"""Debian's ctr pulls, unpacks, lists, removes, exports and imports images through our
daemon (issues 3 and 4 acceptance), against a real registry on 127.0.0.1."""

from __future__ import annotations

import os
import shlex
import subprocess

import pytest

from pycontainerd.mount import unmount_all
from tests.interop.test_ctr_foundation import ctr
from tests.support.layers import tree, tree_diff
from tests.support.pyctr import wait_for

pytestmark = [pytest.mark.interop, pytest.mark.root]


def blob_files(daemon) -> set[str]:
    d = daemon.root / "io.containerd.content.v1.content" / "blobs" / "sha256"
    return set(os.listdir(d)) if d.exists() else set()


def snapshot_dirs(daemon) -> set[str]:
    d = daemon.root / "io.containerd.snapshotter.v1.overlayfs" / "snapshots"
    return set(os.listdir(d)) if d.exists() else set()


def test_pull_unpack_matches_umoci_and_rm_collects_everything(ctr_bin, daemon, layered_image, tmp_path):
    ref = layered_image.ref
    pulled = ctr(ctr_bin, daemon, "images", "pull", "--plain-http", ref)
    assert "unpacking" in pulled.stdout and "done" in pulled.stdout
    ls = ctr(ctr_bin, daemon, "images", "ls").stdout.splitlines()
    row = next(line for line in ls if line.startswith(ref))
    assert layered_image.pushed.digest in row and "application/vnd.oci.image.manifest.v1+json" in row
    digests = {line.split()[0] for line in ctr(ctr_bin, daemon, "content", "ls").stdout.splitlines()[1:]}
    expected = {layered_image.pushed.digest, layered_image.pushed.config_digest, *layered_image.pushed.layer_digests}
    assert digests == expected
    snaps = ctr(ctr_bin, daemon, "snapshots", "ls").stdout.splitlines()[1:]
    assert len(snaps) == 3 and all(line.split()[-1] == "Committed" for line in snaps)
    tree_out = ctr(ctr_bin, daemon, "snapshots", "tree").stdout
    assert tree_out.count("sha256:") == 3
    keys = [line.split()[0] for line in snaps]
    parents = {line.split()[0]: (line.split()[1] if len(line.split()) == 3 else "") for line in snaps}
    top = next(k for k in keys if k not in parents.values())
    usage = ctr(ctr_bin, daemon, "snapshots", "usage", top).stdout
    assert top in usage

    ctr(ctr_bin, daemon, "snapshots", "view", "inspect-view", top)
    target = tmp_path / "rootfs"
    target.mkdir()
    cmd = ctr(ctr_bin, daemon, "snapshots", "mounts", str(target), "inspect-view").stdout.strip()
    assert cmd.startswith("mount ")
    subprocess.run(shlex.split(cmd), check=True)
    try:
        ours, theirs = tree(target, dir_mtimes=False), tree(layered_image.reference_rootfs, dir_mtimes=False)
        ours.pop("."), theirs.pop(".")
        assert ours == theirs, "\n".join(tree_diff(ours, theirs))
    finally:
        unmount_all(str(target))
    ctr(ctr_bin, daemon, "snapshots", "rm", "inspect-view")

    assert blob_files(daemon) >= {d.split(":")[1] for d in expected}
    ctr(ctr_bin, daemon, "images", "rm", ref)
    assert wait_for(lambda: not blob_files(daemon)), blob_files(daemon)
    assert wait_for(lambda: not snapshot_dirs(daemon)), snapshot_dirs(daemon)
    assert ctr(ctr_bin, daemon, "content", "ls", "-q").stdout.split() == []
    assert ctr(ctr_bin, daemon, "snapshots", "ls").stdout.splitlines()[1:] == []


@pytest.mark.parametrize("variant", ["oci", "multi", "v2s2", "zstd"])
def test_pull_variants_and_export_import(ctr_bin, daemon, busybox_image, variant, tmp_path):
    image = getattr(busybox_image, variant)
    if image is None:
        pytest.fail(f"fixture could not build the {variant} variant: {busybox_image.notes}")
    ctr(ctr_bin, daemon, "images", "pull", "--plain-http", image.ref)
    row = next(line for line in ctr(ctr_bin, daemon, "images", "ls").stdout.splitlines()
               if line.startswith(image.ref))
    assert busybox_image.platform in row
    archive = tmp_path / "image.tar"
    ctr(ctr_bin, daemon, "images", "export", str(archive), image.ref)
    ctr(ctr_bin, daemon, "images", "rm", "--sync", image.ref)
    assert ctr(ctr_bin, daemon, "images", "ls", "-q").stdout.split() == []
    imported = ctr(ctr_bin, daemon, "images", "import", str(archive)).stdout
    assert "unpacking" in imported
    assert ctr(ctr_bin, daemon, "images", "ls", "-q").stdout.split() == [image.ref]
    check = ctr(ctr_bin, daemon, "images", "check").stdout
    assert "complete" in check


def test_pull_of_missing_tag_fails_cleanly(ctr_bin, daemon, registry):
    proc = ctr(ctr_bin, daemon, "images", "pull", "--plain-http", f"{registry.host}/library/nothing:here",
               check=False)
    assert proc.returncode != 0 and "not found" in proc.stderr
    assert ctr(ctr_bin, daemon, "images", "ls", "-q").stdout.split() == []
    assert ctr(ctr_bin, daemon, "content", "ls", "-q").stdout.split() == []


def test_import_docker_archive_made_by_skopeo(ctr_bin, daemon, busybox_image, tmp_path):
    """A docker-archive tarball (docker save's format), written by skopeo from the OCI
    layout, imports through ctr into our daemon and runs."""
    archive = tmp_path / "docker-archive.tar"
    subprocess.run(["skopeo", "copy", "--quiet", f"oci:{busybox_image.layout}:latest",
                    f"docker-archive:{archive}:example.test/busybox:archived"], check=True)
    out = ctr(ctr_bin, daemon, "images", "import", str(archive)).stdout
    assert "unpacking" in out
    assert "example.test/busybox:archived" in ctr(ctr_bin, daemon, "images", "ls", "-q").stdout.split()
    run = ctr(ctr_bin, daemon, "run", "--rm", "example.test/busybox:archived", "from-archive", "echo", "ok")
    assert run.stdout == "ok\n"
