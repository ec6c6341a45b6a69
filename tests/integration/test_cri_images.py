"""CRI ImageService (and the runtime calls that need no network) against a real daemon,
driven by our CRI client generated from ``api/cri``; images come from a real registry.

critest behaviours covered here: runtime info (Version, Status conditions), PullImage /
ImageStatus / ListImages / RemoveImage (by tag, by digest, by id), image with a user, pull
with credentials, ImageFsInfo, and a host-network pod whose sandbox image is pulled on
demand.
"""

from __future__ import annotations

import base64
import json
import os

import grpc
import pytest

from pycontainerd.api.cri.runtime.v1 import api_pb2 as cri
from pycontainerd.remotes.reference import parse_normalized
from tests.support.cri import (
    container_config,
    copy_image,
    cri_env,
    hosts_dir,
    pod_config,
)

pytestmark = [pytest.mark.integration, pytest.mark.root]


@pytest.fixture
def env(tmp_path, registry):
    with cri_env(tmp_path / "cri", registry) as e:
        yield e


def code_of(fn, *args):
    with pytest.raises(grpc.RpcError) as err:
        fn(*args)
    return err.value.code(), err.value.details()


def test_version_status_and_runtime_config(env):
    c = env.client
    v = c.Version(cri.VersionRequest(version="v1"))
    assert (v.version, v.runtime_name, v.runtime_api_version) == ("0.1.0", "pycontainerd", "v1")
    assert v.runtime_version
    st = c.Status(cri.StatusRequest(verbose=True))
    conds = {x.type: x for x in st.status.conditions}
    assert conds["RuntimeReady"].status is True
    net = conds["NetworkReady"]
    assert net.status is False and net.reason == "NetworkPluginNotReady"
    assert "cni plugin not initialized" in net.message
    assert json.loads(st.info["config"])["sandbox_image"] == env.images.pause
    assert {h.name for h in st.runtime_handlers} == {"", "runc"}
    # a network configuration appearing later is picked up without a restart
    (env.conf_dir / "10-net.conflist").write_text(json.dumps({"cniVersion": "1.0.0", "name": "n",
                                                              "plugins": [{"type": "bridge"}]}))
    conds = {x.type: x for x in c.Status(cri.StatusRequest()).status.conditions}
    assert conds["NetworkReady"].status is True and not conds["NetworkReady"].reason
    assert c.RuntimeConfig(cri.RuntimeConfigRequest()).linux.cgroup_driver == cri.CGROUPFS
    c.UpdateRuntimeConfig(cri.UpdateRuntimeConfigRequest(
        runtime_config=cri.RuntimeConfig(network_config=cri.NetworkConfig(pod_cidr="10.244.0.0/24"))))
    assert json.loads(c.Status(cri.StatusRequest(verbose=True)).info["podCIDR"]) == "10.244.0.0/24"
    # streaming endpoints (tests/integration/test_cri_stream.py) check their target first
    for call, req in ((c.Exec, cri.ExecRequest(container_id="x", cmd=["sh"], stdout=True)),
                      (c.Attach, cri.AttachRequest(container_id="x", stdout=True)),
                      (c.PortForward, cri.PortForwardRequest(pod_sandbox_id="x", port=[80]))):
        assert code_of(call, req)[0] == grpc.StatusCode.NOT_FOUND
    assert code_of(c.CheckpointContainer, cri.CheckpointContainerRequest(container_id="x"))[0] == \
        grpc.StatusCode.UNIMPLEMENTED


def test_pull_status_list_remove(env):
    c, ref = env.client, env.images.busybox
    name = str(parse_normalized(ref))
    image_id = c.pull(ref)
    assert image_id.startswith("sha256:") and len(image_id) == 71
    st = c.ImageStatus(cri.ImageStatusRequest(image=cri.ImageSpec(image=ref), verbose=True))
    img = st.image
    assert img.id == image_id and list(img.repo_tags) == [name]
    assert len(img.repo_digests) == 1 and img.repo_digests[0].startswith(name.rsplit(":", 1)[0] + "@sha256:")
    assert img.size > 500_000 and not img.HasField("uid") and img.username == ""
    info = json.loads(st.info["info"])
    assert info["imageSpec"]["config"]["Cmd"] == ["sh"] and info["chainID"].startswith("sha256:")
    assert not c.ImageStatus(cri.ImageStatusRequest(image=cri.ImageSpec(image=ref))).info  # verbose only
    # the same image by its id, an id prefix, the bare hex id and its repo digest
    for other in (image_id, image_id[:19], image_id[7:], img.repo_digests[0]):
        assert c.ImageStatus(cri.ImageStatusRequest(image=cri.ImageSpec(image=other))).image.id == image_id, other
    # through containerd's API: reference, repo digest and id, all CRI-managed, in k8s.io
    names = env.containerd_images()
    assert {name, img.repo_digests[0], image_id} <= set(names)
    assert all(names[n].get("io.cri-containerd.image") == "managed" for n in (name, image_id))
    # the sandbox image is pinned, others are not
    pause_id = c.pull(env.images.pause)
    listed = {i.id: i for i in c.ListImages(cri.ListImagesRequest()).images}
    assert set(listed) == {image_id, pause_id}
    assert listed[pause_id].pinned and not listed[image_id].pinned
    only = c.ListImages(cri.ListImagesRequest(filter=cri.ImageFilter(image=cri.ImageSpec(image=ref)))).images
    assert [i.id for i in only] == [image_id]
    assert not c.ListImages(cri.ListImagesRequest(filter=cri.ImageFilter(
        image=cri.ImageSpec(image="nothing/here:1")))).images
    fs = c.ImageFsInfo(cri.ImageFsInfoRequest()).image_filesystems
    assert len(fs) == 1 and fs[0].fs_id.mountpoint.endswith("io.containerd.snapshotter.v1.overlayfs")
    assert fs[0].used_bytes.value > 500_000 and fs[0].inodes_used.value > 10 and fs[0].timestamp > 0
    # remove: every name goes, and its blobs before the call returns (containerd deletes the
    # last name synchronously); removing again, or something never pulled, is fine
    blobs = env.daemon.root / "io.containerd.content.v1.content" / "blobs" / "sha256"
    assert image_id[7:] in os.listdir(blobs)  # the config blob
    c.RemoveImage(cri.RemoveImageRequest(image=cri.ImageSpec(image=ref)))
    assert image_id[7:] not in os.listdir(blobs)
    assert not c.ImageStatus(cri.ImageStatusRequest(image=cri.ImageSpec(image=ref))).HasField("image")
    assert not c.ImageStatus(cri.ImageStatusRequest(image=cri.ImageSpec(image=image_id))).HasField("image")
    assert not {name, img.repo_digests[0], image_id} & set(env.containerd_images())
    c.RemoveImage(cri.RemoveImageRequest(image=cri.ImageSpec(image=ref)))
    c.RemoveImage(cri.RemoveImageRequest(image=cri.ImageSpec(image="never/pulled:1")))
    assert [i.id for i in c.ListImages(cri.ListImagesRequest()).images] == [pause_id]


def test_image_user_is_reported(env, tmp_path):
    # an image whose config names a user: uid for a number, username for a name
    from tests.support.registry import _run, _tool

    umoci, skopeo = _tool("umoci", "umoci"), _tool("skopeo", "skopeo")
    layout = tmp_path / "layout"
    _run(skopeo, "copy", "--quiet", "--src-tls-verify=false", f"docker://{env.images.busybox}", f"oci:{layout}:b")
    host = env.images.registry_host
    for tag, user in (("uid", "1000"), ("named", "app:extra")):
        _run(umoci, "config", "--image", f"{layout}:b", "--tag", tag, "--config.user", user)
        _run(skopeo, "copy", "--quiet", "--dest-tls-verify=false", f"oci:{layout}:{tag}",
             f"docker://{host}/cri/user:{tag}")
    c = env.client
    c.pull(f"{host}/cri/user:uid")
    c.pull(f"{host}/cri/user:named")
    by_uid = c.ImageStatus(cri.ImageStatusRequest(image=cri.ImageSpec(image=f"{host}/cri/user:uid"))).image
    named = c.ImageStatus(cri.ImageStatusRequest(image=cri.ImageSpec(image=f"{host}/cri/user:named"))).image
    assert by_uid.uid.value == 1000 and by_uid.username == ""
    assert not named.HasField("uid") and named.username == "app"


def test_pull_errors_leave_nothing(env):
    c = env.client
    before = set(env.containerd_images())
    code, _ = code_of(c.pull, "UPPER/case:1")
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, details = code_of(c.pull, f"{env.images.registry_host}/cri/busybox:no-such-tag")
    assert code == grpc.StatusCode.NOT_FOUND, details
    code, _ = code_of(c.PullImage, cri.PullImageRequest())
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert set(env.containerd_images()) == before


def test_pull_with_credentials(env, registry_auth):
    user, password = registry_auth.username, registry_auth.password
    ref = f"{registry_auth.host}/cri/private:1"
    copy_image(env.images.busybox, ref, dest_creds=f"{user}:{password}")
    c = env.client
    code, details = code_of(c.pull, ref)
    assert code == grpc.StatusCode.UNKNOWN and "authoriz" in details
    code, _ = code_of(c.pull, ref, cri.AuthConfig(username=user, password="wrong"))
    assert code == grpc.StatusCode.UNKNOWN
    # credentials for another server are not sent
    code, _ = code_of(c.pull, ref, cri.AuthConfig(username=user, password=password, server_address="elsewhere:1"))
    assert code == grpc.StatusCode.UNKNOWN
    image_id = c.pull(ref, cri.AuthConfig(username=user, password=password, server_address=registry_auth.host))
    c.RemoveImage(cri.RemoveImageRequest(image=cri.ImageSpec(image=image_id)))
    encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
    assert c.pull(ref, cri.AuthConfig(auth=encoded)) == image_id


def test_pull_through_registry_hosts_config(tmp_path, registry):
    # hosts.toml sends a name that resolves nowhere to the local registry: no traffic leaves the host
    certs = hosts_dir(tmp_path / "hosts", registry.host)
    mirror = certs / "registry.invalid"
    mirror.mkdir()
    (mirror / "hosts.toml").write_text(f'server = "http://{registry.host}"\n'
                                       f'[host."http://{registry.host}"]\n  capabilities = ["pull", "resolve"]\n')
    with cri_env(tmp_path / "cri", registry, config_path=str(certs)) as env:
        image_id = env.client.pull("registry.invalid/cri/busybox:1")
        img = env.client.ImageStatus(cri.ImageStatusRequest(
            image=cri.ImageSpec(image="registry.invalid/cri/busybox:1"))).image
        assert img.id == image_id and list(img.repo_tags) == ["registry.invalid/cri/busybox:1"]
        assert env.client.pull(env.images.busybox) == image_id  # same image under its own name


def test_host_network_pod_pulls_its_sandbox_image(env):
    c = env.client
    assert not c.ListImages(cri.ListImagesRequest()).images
    pod = pod_config("hostnet", host_network=True, log_dir=str(env.log_dir / "hostnet"))
    pid = c.run_pod(pod)
    st = c.pod_status(pid).status
    assert st.state == cri.SANDBOX_READY and st.network.ip == ""
    assert st.linux.namespaces.options.network == cri.NODE
    assert [i.repo_tags[0] for i in c.ListImages(cri.ListImagesRequest()).images] == [
        str(parse_normalized(env.images.pause))]
    c.pull(env.images.busybox)
    cid = c.create(pid, container_config("box", env.images.busybox, command=["sleep", "100"]), pod)
    c.start(cid)
    r = c.exec(cid, "cat", "/proc/net/dev")
    assert r.exit_code == 0
    with open("/proc/net/dev") as f:
        host_ifaces = {line.split(":")[0].strip() for line in f.read().splitlines()[2:]}
    pod_ifaces = {line.split(":")[0].strip() for line in r.stdout.decode().splitlines()[2:]}
    assert pod_ifaces == host_ifaces          # the host's network namespace
    c.StopPodSandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pid))
    c.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pid))
    assert not c.ListPodSandbox(cri.ListPodSandboxRequest()).items
    assert not env.containerd_containers()
