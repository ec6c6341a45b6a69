"""Two CRI features containerd 2.x has and critest checks (issue 13), against a real daemon
and runc: recursive read-only mounts (``Mount.recursive_read_only`` → runc's ``rro``) and
``SupplementalGroupsPolicy`` Merge/Strict with the user ``ContainerStatus`` reports.

The rro mount is a host folder with a tmpfs mounted under it: a plain read-only bind leaves
that submount writable, an rro one makes it read-only too (``touch`` fails with EROFS). The
groups are checked with ``id`` inside the container, against the image's ``/etc/group``
(user ``app`` 1000 is a member of ``extra`` 2000) and against what ContainerStatus says.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import grpc
import pytest

from pycontainerd.api.cri.runtime.v1 import api_pb2 as cri
from tests.support.cri import container_config, cri_env, pod_config
from tests.support.crictl import crictl, crictl_json
from tests.support.start_failures import as_crictl_config

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


def test_crictl_sees_strict_groups_and_an_rro_mount(env, tmp_path, volume):
    """Through Kubernetes' crictl: the JSON configs it reads, ``exec -s`` and ``inspect``."""
    pod_json = tmp_path / "pod.json"
    pod_json.write_text(json.dumps(as_crictl_config(pod_config("crictl-rro", host_network=True))))
    pod = crictl(env, "runp", str(pod_json)).stdout.strip()
    cc = container_config("strict", env.images.busybox, command=["sleep", "1000"], mounts=[
        cri.Mount(container_path="/rro", host_path=str(volume), readonly=True, recursive_read_only=True)])
    sc = cc.linux.security_context
    sc.run_as_user.value = 1000
    sc.supplemental_groups.extend([1234])
    sc.supplemental_groups_policy = cri.Strict
    ctr_json = tmp_path / "strict.json"
    ctr_json.write_text(json.dumps(as_crictl_config(cc)))
    cid = crictl(env, "create", pod, str(ctr_json), str(pod_json)).stdout.strip()
    crictl(env, "start", cid)
    ids = crictl(env, "exec", "-s", cid, "sh", "-c", "id -u; id -g; id -G").stdout.split("\n")
    user = crictl_json(env, "inspect", cid)["status"]["user"]["linux"]
    assert (int(user["uid"]), int(user["gid"])) == (int(ids[0]), int(ids[1])) == (1000, 1000)
    assert sorted(int(g) for g in user["supplementalGroups"]) == sorted(int(g) for g in ids[2].split()) == [1000, 1234]
    touch = crictl(env, "exec", "-s", cid, "touch", "/rro/sub/x", check=False)
    assert touch.returncode != 0 and "Read-only file system" in touch.stdout + touch.stderr
    info = crictl_json(env, "info")
    assert info["features"]["supplemental_groups_policy"] is True       # Go's encoding/json of the proto
    default = next(h for h in info["runtimeHandlers"] if not h.get("name"))
    assert default["features"]["recursive_read_only_mounts"] is True
    crictl(env, "stopp", pod)
    crictl(env, "rmp", pod)


def test_runtime_without_rro_refuses_it(tmp_path, registry, volume):
    """A handler whose OCI runtime's ``features`` lists no ``rro`` (runc behind a wrapper that
    leaves it out) is not advertised, and an rro mount in its pods is refused up front."""
    runc = shutil.which("runc")
    wrapper = tmp_path / "runc-no-rro"
    wrapper.write_text("#!/bin/sh\n"
                       f'if [ "$1" = features ]; then {runc} features | sed \'s/"rro",//\'; exit; fi\n'
                       f'exec {runc} "$@"\n')
    wrapper.chmod(0o755)
    extra = ('[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.norro]\n'
             'runtime_type = "io.containerd.runc.v2"\n'
             '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.norro.options]\n'
             f'BinaryName = "{wrapper}"\n'
             '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]\n'
             'runtime_type = "io.containerd.runc.v2"\n')
    with cri_env(tmp_path / "cri", registry, extra=extra, pull_busybox=True) as env:
        c = env.client
        handlers = {h.name: h.features.recursive_read_only_mounts
                    for h in c.Status(cri.StatusRequest()).runtime_handlers}
        assert handlers == {"": True, "runc": True, "norro": False}
        cfg = pod_config("norro-pod", host_network=True)
        pid = c.run_pod(cfg, handler="norro")
        mount = cri.Mount(container_path="/rro", host_path=str(volume), readonly=True, recursive_read_only=True)
        with pytest.raises(grpc.RpcError) as err:
            c.create(pid, container_config("rro", env.images.busybox, command=["sleep", "1"], mounts=[mount]), cfg)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "not supported" in err.value.details()
        assert not c.ListContainers(cri.ListContainersRequest()).containers
