"""Disk full during a pull (issue 9): a daemon whose ``--root`` is an 8 MiB tmpfs pulls
from the local registry

1. an image whose one layer blob (12 MiB of random bytes) does not fit: the content write
   fails with ``RESOURCE_EXHAUSTED`` and says "no space left on device"; no blob of it is
   committed, no image recorded, and once ctr's lease is gone the collector frees the
   partial ingest;
2. an image whose blobs fit (12 MiB of zeros, gzip: a few KiB) but whose layer does not
   unpack: the apply fails with ``RESOURCE_EXHAUSTED``; no snapshot is committed;

after each the consistency checker finds nothing and the daemon keeps serving: busybox
pulls and runs. The tmpfs is unmounted at teardown, also when the test fails."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from pycontainerd.admin.check import check, mount_points
from pycontainerd.client import Client
from pycontainerd.errdefs import ResourceExhausted
from pycontainerd.mount import unmount_all
from pycontainerd.testing import force_cleanup
from tests.reliability.harness import FaultRunner
from tests.support.checks import settled_check
from tests.support.images import push_one_layer_image

pytestmark = [pytest.mark.reliability, pytest.mark.integration, pytest.mark.root]

TMPFS_SIZE = 8 << 20
LAYER_SIZE = 12 << 20


@pytest.fixture(scope="module")
def big_images(registry):
    """``(random, zeros)``: references of the two 12 MiB one-layer images."""
    work = Path(tempfile.mkdtemp(prefix="pcd-diskfull-"))
    try:
        yield (push_one_layer_image(registry, work, "diskfull-random", os.urandom(LAYER_SIZE)),
               push_one_layer_image(registry, work, "diskfull-zeros", bytes(LAYER_SIZE)))
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
def small_root_daemon(daemon_factory):
    """A daemon whose ``--root`` is a fresh 8 MiB tmpfs (unmounted at teardown)."""
    d = daemon_factory(start=False)
    d.root.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0711", "pcd-diskfull", str(d.root)],
                   check=True)
    try:
        d.start()
        yield d
    finally:
        if d.proc is not None and d.proc.poll() is None:  # a run cut short by a failure
            subprocess.run(["ctr", "--address", d.address, "tasks", "rm", "-f", "after-full"], capture_output=True)
        else:
            force_cleanup(d.state)
        d.stop()
        for mp in reversed([mp for mp, _ in mount_points() if mp == str(d.root) or mp.startswith(f"{d.base}/")]):
            unmount_all(mp)


def _blob_files(d) -> set[str]:
    blobs = d.root / "io.containerd.content.v1.content" / "blobs" / "sha256"
    return set(os.listdir(blobs)) if blobs.exists() else set()


def test_pull_onto_a_full_disk_fails_cleanly_and_the_daemon_keeps_serving(small_root_daemon, ctr_bin, big_images,
                                                                           busybox_image):
    d = small_root_daemon
    random_ref, zeros_ref = big_images
    runner = FaultRunner(d, ctr_bin, busybox_image.oci.ref, busybox_image.oci.ref, seed=0)

    # 1. the layer blob does not fit: our client gets the status code, ctr (1.6, which
    # knows no RESOURCE_EXHAUSTED) prints the message
    before = _blob_files(d)
    with Client(d.address) as client:
        with pytest.raises(ResourceExhausted, match="No space left on device") as exc:
            client.pull(random_ref, plain_http=True)
    assert "write ingest of ref" in str(exc.value)
    p = runner.ctr("images", "pull", "--plain-http", random_ref, check=False)
    assert p.returncode != 0
    assert "No space left on device: resource exhausted" in p.stderr, p.stderr
    assert random_ref not in runner.ctr("images", "ls", "-q").stdout
    runner.sync_gc()  # the clients removed their leases when they gave up: the partial ingests are garbage
    ingest = d.root / "io.containerd.content.v1.content" / "ingest"
    assert os.listdir(ingest) == []
    new_blobs = _blob_files(d) - before
    assert all(os.path.getsize(d.root / "io.containerd.content.v1.content" / "blobs" / "sha256" / b) < LAYER_SIZE
               for b in new_blobs)  # at most the manifest and config, never a partial layer
    report = check(d.root, d.state)
    assert report.ok, [p.line() for p in report.problems]

    # 2. the blobs fit, the unpacked layer does not
    with Client(d.address) as client:
        with pytest.raises(ResourceExhausted, match="No space left on device"):
            client.pull(zeros_ref, plain_http=True)
    snapshots = runner.ctr("snapshots", "ls").stdout.splitlines()[1:]
    assert [s for s in snapshots if "Committed" in s] == [], snapshots
    runner.ctr("images", "rm", "--sync", zeros_ref, check=False)  # recorded before unpacking, as containerd does
    report = check(d.root, d.state)
    assert report.ok, [p.line() for p in report.problems]

    # the daemon keeps serving: a small image pulls and runs
    runner.ctr("images", "pull", "--plain-http", busybox_image.oci.ref)
    out = runner.ctr("run", "--rm", busybox_image.oci.ref, "after-full", "echo", "still serving")
    assert out.stdout == "still serving\n"
    report = settled_check(d)  # ctr's delete asked for a collection, which runs a moment later
    assert report.ok, [p.line() for p in report.problems]
