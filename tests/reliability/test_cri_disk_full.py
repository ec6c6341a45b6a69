"""Disk full during a CRI pull (issue 15, containerd #4249): the daemon's ``--root`` is a
small tmpfs and crictl pulls an image that does not fit.

1. The layer blob (random bytes, incompressible) does not fit: ``PullImage`` fails with
   ``RESOURCE_EXHAUSTED`` saying "no space left on device"; no image is listed, no snapshot
   made, ``ImageFsInfo`` reports what it did before; the partial download stays as an
   ingest, and once the tmpfs is grown (``mount -o remount,size=``) the next pull resumes it
   with a ``Range`` request and succeeds.
2. The blobs fit (zeros compress to a few KiB) but the unpacked layer does not: the same
   ``RESOURCE_EXHAUSTED``; no half-extracted snapshot stays (Snapshots API and the
   snapshotter's directory), no image is listed; after growing the tmpfs the pull succeeds.

The images are built by umoci and pushed by skopeo, then served (byte for byte) by the fake
registry so the test sees the ``Range`` requests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import grpc
import pytest

from pycontainerd.api.cri.runtime.v1 import api_pb2 as cri
from tests.support.crictl import crictl, crictl_json
from tests.support.cri import cri_env
from tests.support.fake_registry import FakeRegistry, mirror_image, serve_http
from tests.support.images import push_one_layer_image

pytestmark = [pytest.mark.reliability, pytest.mark.integration, pytest.mark.root]

ROOT_SIZE = 32 << 20
PAYLOAD = 40 << 20
ROOMY = 192 << 20
SNAPSHOTS = "io.containerd.snapshotter.v1.overlayfs/snapshots"


@pytest.fixture(scope="module")
def big_images(registry):
    """``{"random": ref, "zeros": ref}`` in the test registry: one 40 MiB file each."""
    work = Path(tempfile.mkdtemp(prefix="pcd-cri-diskfull-"))
    try:
        yield {"random": push_one_layer_image(registry, work, "cri-diskfull-random", os.urandom(PAYLOAD)),
               "zeros": push_one_layer_image(registry, work, "cri-diskfull-zeros", bytes(PAYLOAD))}
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
def env(tmp_path, registry):
    with cri_env(tmp_path / "cri", registry, root_tmpfs=ROOT_SIZE) as e:
        crictl(e, "pull", e.images.busybox)
        yield e


def _served(registry, ref: str) -> FakeRegistry:
    reg = FakeRegistry()
    repo, _, tag = ref.partition("/")[2].rpartition(":")
    mirror_image(reg, registry.host, repo, tag)
    return reg


def _image_fs(env, since: int = 0) -> tuple[int, int, int]:
    """``(used bytes, inodes, timestamp)`` from crictl imagefsinfo, a measurement taken
    after ``since`` (the daemon caches one for a few seconds: ask until a new one comes)."""
    while True:
        (fs,) = crictl_json(env, "imagefsinfo")["status"]["imageFilesystems"]
        if int(fs["timestamp"]) > since:
            return int(fs["usedBytes"]["value"]), int(fs["inodesUsed"]["value"]), int(fs["timestamp"])
        time.sleep(0.5)


def _snapshots(env) -> list[str]:
    """The snapshots of namespace k8s.io, through Debian's ctr (``KEY PARENT KIND``)."""
    out = subprocess.run(["ctr", "--address", env.daemon.address, "-n", "k8s.io", "snapshots", "ls"],
                         check=True, capture_output=True, text=True).stdout
    return sorted(line.split()[0] + " " + line.split()[-1] for line in out.splitlines()[1:])


def _active_ingests(env) -> dict[str, int]:
    """Ingest ref → bytes written so far (``ctr content active``)."""
    out = subprocess.run(["ctr", "--address", env.daemon.address, "-n", "k8s.io", "content", "active"],
                         check=True, capture_output=True, text=True).stdout
    return {line.split()[0]: line.split()[1] for line in out.splitlines()[1:]}


def _leases(env) -> str:
    return subprocess.run(["ctr", "--address", env.daemon.address, "-n", "k8s.io", "leases", "ls"],
                          check=True, capture_output=True, text=True).stdout


def _listed(env, ref: str) -> bool:
    return any(ref in i["repoTags"] for i in crictl_json(env, "images")["images"])


def _fails_exhausted(env, ref: str) -> str:
    failed = crictl(env, "pull", ref, check=False)
    assert failed.returncode != 0
    assert "code = ResourceExhausted" in failed.stderr, failed.stderr
    assert "no space left on device" in failed.stderr.lower(), failed.stderr
    with pytest.raises(grpc.RpcError) as err:
        env.client.pull(ref)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.value
    return failed.stderr


def _grow(env) -> None:
    subprocess.run(["mount", "-o", f"remount,size={ROOMY}", str(env.daemon.root)], check=True)


def _layer_digest(reg: FakeRegistry, repo: str) -> str:
    (manifest,) = [json.loads(raw) for _, raw in reg.manifests[repo].values()]
    (layer,) = manifest["layers"]
    return layer["digest"]


def test_crictl_pull_blob_does_not_fit_then_resumes(env, registry, big_images):
    reg = _served(registry, big_images["random"])
    repo = next(iter(reg.manifests))
    layer = _layer_digest(reg, repo)
    snapshots, snapshot_dirs = _snapshots(env), sorted(os.listdir(env.daemon.root / SNAPSHOTS))
    fs_before = _image_fs(env, since=time.time_ns())
    with serve_http(reg) as host:
        ref = f"{host}/{repo}:latest"
        stderr = _fails_exhausted(env, ref)
        assert layer.removeprefix("sha256:") in stderr, stderr
        assert not _listed(env, ref)
        assert _snapshots(env) == snapshots
        assert sorted(os.listdir(env.daemon.root / SNAPSHOTS)) == snapshot_dirs
        assert _image_fs(env, since=fs_before[2])[:2] == fs_before[:2]
        ingests = _active_ingests(env)
        assert f"layer-{layer}" in ingests, ingests  # what fit stays, held by the pull's lease
        assert "cri-pull-" in _leases(env)

        before_retry = len(reg.requests)
        _grow(env)
        crictl(env, "pull", ref)
        assert _listed(env, ref)
    ranges = [r.headers.get("range") for r in reg.requests[before_retry:]
              if r.method == "GET" and r.url.path.endswith(f"/blobs/{layer}")]
    assert ranges and ranges[0] and ranges[0].startswith("bytes=") and ranges[0] != "bytes=0-", ranges
    assert "cri-pull-" not in _leases(env)  # the kept lease went with the pull that finished


def test_crictl_pull_layer_does_not_unpack_leaves_no_snapshot(env, registry, big_images):
    ref = big_images["zeros"]
    snapshots, snapshot_dirs = _snapshots(env), sorted(os.listdir(env.daemon.root / SNAPSHOTS))
    fs_before = _image_fs(env, since=time.time_ns())
    _fails_exhausted(env, ref)
    assert not _listed(env, ref)
    assert not [n for n in env.containerd_images() if "cri-diskfull" in n]  # not even recorded
    assert _snapshots(env) == snapshots
    assert sorted(os.listdir(env.daemon.root / SNAPSHOTS)) == snapshot_dirs
    assert _image_fs(env, since=fs_before[2])[:2] == fs_before[:2]

    _grow(env)
    crictl(env, "pull", ref)
    assert _listed(env, ref)
    assert len(_snapshots(env)) == len(snapshots) + 1
    assert "cri-pull-" not in _leases(env)
