"""Two CRI features containerd 2.x has and critest checks (issue 13), against a real daemon
and runc: recursive read-only mounts (``Mount.recursive_read_only`` → runc's ``rro``) and
``SupplementalGroupsPolicy`` Merge/Strict with the user ``ContainerStatus`` reports.

The rro mount is a host folder with a tmpfs mounted under it: a plain read-only bind leaves
that submount writable, an rro one makes it read-only too (``touch`` fails with EROFS). The
groups are checked with ``id`` inside the container, against the image's ``/etc/group``
(user ``app`` 1000 is a member of ``extra`` 2000) and against what ContainerStatus says.
"""

from __future__ import annotations

import subprocess

import grpc
import pytest

from pycontainerd.api.cri.runtime.v1 import api_pb2 as cri
from tests.support.cri import container_config, cri_env, pod_config

pytestmark = [pytest.mark.integration, pytest.mark.root]


@pytest.fixture
def env(tmp_path, registry):
    with cri_env(tmp_path / "cri", registry, pull_busybox=True) as e:
        yield e


@pytest.fixture
def pod(env):
    cfg = pod_config("rro-pod", host_network=True, log_dir=str(env.log_dir / "rro-pod"))
    return env.client.run_pod(cfg), cfg


@pytest.fixture
def volume(tmp_path):
    """A host folder with a writable tmpfs mounted on its ``sub`` folder."""
    top = tmp_path / "volume"
    sub = top / "sub"
    sub.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "none", str(sub)], check=True)
    try:
        yield top
    finally:
        subprocess.run(["umount", "-l", str(sub)], check=False)


def test_status_advertises_both_features(env):
    resp = env.client.Status(cri.StatusRequest())
    handlers = {h.name: h.features for h in resp.runtime_handlers}
    # Debian's runc lists "rro" among the mount options of `runc features`
    assert handlers[""].recursive_read_only_mounts and handlers["runc"].recursive_read_only_mounts
    assert resp.features.supplemental_groups_policy


def test_recursive_read_only_mount_makes_submounts_read_only(env, pod, volume):
    c = env.client
    pid, cfg = pod
    mounts = [cri.Mount(container_path="/ro", host_path=str(volume), readonly=True),
              cri.Mount(container_path="/rro", host_path=str(volume), readonly=True, recursive_read_only=True)]
    cid = c.create(pid, container_config("rro", env.images.busybox, command=["sleep", "1000"], mounts=mounts), cfg)
    c.start(cid)
    spec = c.status(cid, verbose=True).info["info"]
    assert '"rro"' in spec
    plain = c.exec(cid, "sh", "-c", "touch /ro/top 2>&1; touch /ro/sub/plain && echo sub-writable")
    assert b"Read-only file system" in plain.stdout and b"sub-writable" in plain.stdout
    rec = c.exec(cid, "sh", "-c", "touch /rro/sub/rec 2>&1; echo rc=$?")
    assert b"Read-only file system" in rec.stdout and b"rc=1" in rec.stdout
    assert (volume / "sub" / "plain").exists() and not (volume / "sub" / "rec").exists()
    assert [m.recursive_read_only for m in c.status(cid).status.mounts] == [False, True]


@pytest.mark.parametrize("readonly,propagation,words", [
    (False, cri.PROPAGATION_PRIVATE, "needs to be read-only"),
    (True, cri.PROPAGATION_HOST_TO_CONTAINER, "needs private propagation"),
    (True, cri.PROPAGATION_BIDIRECTIONAL, "needs private propagation"),
])
def test_recursive_read_only_mount_refused(env, pod, volume, readonly, propagation, words):
    c = env.client
    pid, cfg = pod
    mount = cri.Mount(container_path="/mnt", host_path=str(volume), readonly=readonly, recursive_read_only=True,
                      propagation=propagation)
    with pytest.raises(grpc.RpcError) as err:
        c.create(pid, container_config("bad-rro", env.images.busybox, command=["sleep", "1"], mounts=[mount]), cfg)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and words in err.value.details()
    assert "/mnt" in err.value.details()
    assert not c.ListContainers(cri.ListContainersRequest()).containers


def _groups_container(env, pod, name, policy):
    c = env.client
    pid, cfg = pod
    cc = container_config(name, env.images.busybox, command=["sleep", "1000"])
    sc = cc.linux.security_context
    sc.run_as_user.value = 1000
    sc.supplemental_groups.extend([1234])
    sc.supplemental_groups_policy = policy
    cid = c.create(pid, cc, cfg)
    c.start(cid)
    ids = c.exec(cid, "sh", "-c", "id -u; id -g; id -G").stdout.decode().split("\n")
    return cid, int(ids[0]), int(ids[1]), sorted(int(g) for g in ids[2].split())


@pytest.mark.parametrize("policy,groups", [(cri.Merge, [1000, 1234, 2000]), (cri.Strict, [1000, 1234])])
def test_supplemental_groups_policy(env, pod, policy, groups):
    c = env.client
    cid, uid, gid, seen = _groups_container(env, pod, f"groups-{policy}", policy)
    assert (uid, gid, seen) == (1000, 1000, groups)   # Strict: not the image's group "extra" 2000
    user = c.status(cid).status.user.linux
    assert (user.uid, user.gid, sorted(user.supplemental_groups)) == (uid, gid, seen)
    # after the process is gone the last identity it ran with stays
    c.StopContainer(cri.StopContainerRequest(container_id=cid, timeout=0))
    st = c.wait_state(cid, cri.CONTAINER_EXITED)
    assert st.state == cri.CONTAINER_EXITED
    assert (st.user.linux.uid, st.user.linux.gid, sorted(st.user.linux.supplemental_groups)) == (uid, gid, seen)
