"""CRI image volumes (KEP-4639) driven through Kubernetes' crictl (issue 13).

A busybox container gets the pause image mounted at ``/mnt/pause`` and busybox's ``/etc``
(``image_sub_path``) at ``/mnt/etc``: the content reads back inside, writes fail (read-only),
``crictl inspect`` reports each mount's image and its id (``image_ref``), Debian's ``ctr``
sees one view snapshot per mount, the container record labelled so GC keeps it. Removing
the pause image while the container exists leaves the volume readable (the view holds the
chain); a daemon restart keeps it working; ``crictl rm`` leaves no mount and no view, and
GC then takes the pause image's layer. Bad input: ``readonly: false``, a missing subpath,
an image not pulled are refused at create with containerd's codes, leaving nothing.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from pycontainerd.testing import mounts_under
from tests.support.cri import container_config, cri_env, pod_config
from tests.support.crictl import crictl, wait_for
from tests.support.start_failures import as_crictl_config

pytestmark = [pytest.mark.interop, pytest.mark.root]


def write_config(path, msg) -> str:
    path.write_text(json.dumps(as_crictl_config(msg)))
    return str(path)


def image_mount(path: str, image: str, *, sub: str = "", readonly: bool = True):
    from pycontainerd.api.cri.runtime.v1 import api_pb2 as cri

    return cri.Mount(container_path=path, readonly=readonly, image=cri.ImageSpec(image=image), image_sub_path=sub)


def snapshots(env) -> list[str]:
    """Snapshot keys in namespace k8s.io, through Debian's ctr."""
    out = subprocess.run(["ctr", "--address", env.daemon.address, "-n", "k8s.io", "snapshots", "ls"],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    return [line.split()[0] for line in out.splitlines()[1:] if line.strip()]


def snapshot_parent(env, key: str) -> str:
    out = subprocess.run(["ctr", "--address", env.daemon.address, "-n", "k8s.io", "snapshots", "info", key],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    return json.loads(out)["Parent"]


def test_crictl_image_volumes(tmp_path, registry):
    with cri_env(tmp_path / "cri", registry) as env:
        busybox, pause = env.images.busybox, env.images.pause
        crictl(env, "pull", busybox)
        crictl(env, "pull", pause)
        pause_id = crictl(env, "inspecti", "-o", "json", pause)
        pause_id = json.loads(pause_id.stdout)["status"]["id"]
        pod_json = write_config(tmp_path / "pod.json", pod_config("imgvol", host_network=True))
        pod = crictl(env, "runp", pod_json).stdout.strip()

        def create(name: str, *mounts) -> subprocess.CompletedProcess:
            cfg = container_config(name, busybox, command=["sleep", "100000"], mounts=mounts)
            return crictl(env, "create", pod, write_config(tmp_path / f"{name}.json", cfg), pod_json, check=False)

        # refused at create, nothing left behind
        before = set(snapshots(env))
        bad = create("writable", image_mount("/mnt/pause", pause, readonly=False))
        assert bad.returncode != 0 and "readonly must be true" in bad.stderr, bad.stderr
        bad = create("nosub", image_mount("/mnt/x", busybox, sub="not-existing"))
        assert bad.returncode != 0 and "InvalidArgument" in bad.stderr and "not-existing" in bad.stderr, bad.stderr
        bad = create("escape", image_mount("/mnt/x", busybox, sub="../../../../../../../../etc/ssh"))
        assert bad.returncode != 0 and "does not exist in image" in bad.stderr, bad.stderr
        bad = create("unpulled", image_mount("/mnt/x", f"{env.images.registry_host}/cri/nothing:1"))
        assert bad.returncode != 0 and "NotFound" in bad.stderr, bad.stderr
        assert set(snapshots(env)) == before
        assert not [m for m in mounts_under(str(env.base)) if "image-volumes" in m]
        assert crictl(env, "ps", "-a", "-q").stdout.split() == []

        made = create("vol", image_mount("/mnt/pause", pause), image_mount("/mnt/etc", busybox, sub="etc"))
        assert made.returncode == 0, made.stderr
        cid = made.stdout.strip()
        crictl(env, "start", cid)

        def check_inside() -> None:
            ls = crictl(env, "exec", "-s", cid, "ls", "/mnt/pause").stdout.split()
            assert ls == ["pause"], ls
            passwd = crictl(env, "exec", "-s", cid, "cat", "/mnt/etc/passwd").stdout
            assert passwd.startswith("root:x:0:0:"), passwd
            for path in ("/mnt/pause/new", "/mnt/etc/new"):
                touch = crictl(env, "exec", "-s", cid, "touch", path, check=False)
                assert touch.returncode != 0 and "Read-only file system" in touch.stderr + touch.stdout, touch

        check_inside()
        status = json.loads(crictl(env, "inspect", "-o", "json", cid).stdout)["status"]
        by_path = {m["containerPath"]: m for m in status["mounts"]}
        assert by_path["/mnt/pause"]["image"]["image"] == pause
        assert by_path["/mnt/pause"]["image"]["imageRef"] == pause_id
        assert by_path["/mnt/etc"]["imageSubPath"] == "etc"
        assert by_path["/mnt/etc"]["readonly"] is True
        views = [f"{cid}-image-volume-0", f"{cid}-image-volume-1"]
        assert set(views) <= set(snapshots(env))
        labels = env.containerd_containers()[cid]
        assert {labels.get(f"containerd.io/gc.ref.snapshot.overlayfs/image-volume-{i}") for i in (0, 1)} == set(views)

        # the image record may go; the view keeps its layers and the volume readable
        crictl(env, "rmi", pause)
        assert pause not in crictl(env, "images", "-q").stdout
        check_inside()

        # a directory a crash mid-create left, with a volume mounted: the restart unmounts it
        live = next(m for m in mounts_under(str(env.base)) if m.endswith(f"/{cid}/image-volumes/0"))
        orphan = Path(live.split(f"/{cid}/")[0]) / ("f" * 64) / "image-volumes" / "0"
        orphan.mkdir(parents=True)
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(orphan)], check=True)
        env.restart()
        assert str(orphan) not in mounts_under(str(env.base)) and not orphan.parent.parent.exists()
        check_inside()
        status = json.loads(crictl(env, "inspect", "-o", "json", cid).stdout)["status"]
        assert {m["containerPath"]: m["image"].get("imageRef") for m in status["mounts"]}["/mnt/pause"] == pause_id

        layer = snapshot_parent(env, views[0])
        crictl(env, "stop", cid)
        crictl(env, "rm", cid)
        left = set(snapshots(env))
        assert not set(views) & left, left
        assert not [m for m in mounts_under(str(env.base)) if "image-volumes" in m]
        crictl(env, "stopp", pod)
        crictl(env, "rmp", pod)
        # nothing references the pause image's layer any more: GC takes it
        wait_for(lambda: layer not in snapshots(env), timeout=60, what="the pause layer collected")
