"""CRI PullImage against registries that misbehave the way public ones do. Token servers
(containerd #4982, #9224): a POST answered by an HTML login page, tokens named ``token`` or
``access_token``, challenges without a scope, 2-second tokens; credentials as
``username``/``password`` and as ``auth``; a failed re-pull leaves the image it had.
Downloads (containerd PR #5921): cut mid-blob, with Range honoured or ignored, resume to
the right blob; a cut that never makes progress fails with a clear error and the next pull
succeeds.

The registry is :class:`tests.support.fake_registry.FakeRegistry` on a real 127.0.0.1 port,
holding a copy of the CRI busybox image (built with umoci, pushed with skopeo). Both our CRI
client and Kubernetes' crictl drive the daemon."""

from __future__ import annotations

import base64
import json

import grpc
import pytest

from pycontainerd.api.cri.runtime.v1 import api_pb2 as cri
from tests.support.crictl import crictl
from tests.support.cri import container_config, cri_env, pod_config
from tests.support.fake_registry import FakeRegistry, mirror_image, serve_http

pytestmark = [pytest.mark.integration, pytest.mark.root]

USER, SECRET = "user", "s3cret"


@pytest.fixture
def env(tmp_path, registry):
    with cri_env(tmp_path / "cri", registry) as e:
        yield e


def _registry(env, **kw) -> FakeRegistry:
    reg = FakeRegistry(auth="bearer", username=USER, password=SECRET, **kw)
    source, _, rest = env.images.busybox.partition("/")
    repo, _, tag = rest.rpartition(":")
    mirror_image(reg, source, repo, tag, as_repo="private/busybox")
    return reg


def _status(env, ref: str) -> cri.Image:
    return env.client.ImageStatus(cri.ImageStatusRequest(image=cri.ImageSpec(image=ref))).image


def test_html_token_post_short_tokens_and_a_failed_repull(env):
    reg = _registry(env, post_html=True, token_key="token", token_expires_in=2)
    with serve_http(reg) as host:
        ref = f"{host}/private/busybox:1"
        reg.delay[reg.tags["private/busybox"]["1"]] = 2.2  # the manifest: config and layer need a new token
        image_id = env.client.pull(ref, cri.AuthConfig(username=USER, password=SECRET))
        # the POST form was refused with a page, so every token came from the GET
        assert {t.method for t in reg.token_requests} == {"POST", "GET"}
        assert len(reg.tokens) == 2, "one token and one refresh"
        before = _status(env, ref)
        assert before.id == image_id

        reg.delay.clear()
        with pytest.raises(grpc.RpcError) as err:
            env.client.pull(ref, cri.AuthConfig(username=USER, password="wrong"))
        assert err.value.code() == grpc.StatusCode.UNKNOWN and "wrong" not in err.value.details()
        after = _status(env, ref)
        assert (after.id, list(after.repo_tags), after.size) == (before.id, list(before.repo_tags), before.size)

        encoded = base64.b64encode(f"{USER}:{SECRET}".encode()).decode()
        assert env.client.pull(ref, cri.AuthConfig(auth=encoded)) == image_id


def test_crictl_pull_creds_and_auth_without_challenge_scope(env):
    reg = _registry(env, token_key="access_token", challenge_scope=False, oauth_post=False)
    with serve_http(reg) as host:
        ref = f"{host}/private/busybox:1"
        denied = crictl(env, "pull", ref, check=False)
        assert denied.returncode != 0
        crictl(env, "pull", "--creds", f"{USER}:{SECRET}", ref)
        listed = json.loads(crictl(env, "images", "-o", "json").stdout)["images"]
        (img,) = [i for i in listed if ref in i["repoTags"]]

        wrong = crictl(env, "pull", "--creds", f"{USER}:nope", ref, check=False)
        assert wrong.returncode != 0 and "nope" not in wrong.stderr
        again = json.loads(crictl(env, "inspecti", "-o", "json", ref).stdout)["status"]
        assert again["id"] == img["id"] and again["repoTags"] == img["repoTags"]

        encoded = base64.b64encode(f"{USER}:{SECRET}".encode()).decode()
        crictl(env, "rmi", ref)
        crictl(env, "pull", "--auth", encoded, ref)
        assert json.loads(crictl(env, "inspecti", "-o", "json", ref).stdout)["status"]["id"] == img["id"]
    # no challenge named a scope: the token server was still asked for the repository's pull scope
    scopes = {s for t in reg.token_requests for s in t.url.params.get_list("scope")}
    assert scopes == {"repository:private/busybox:pull"}


def _layer_digest(reg: FakeRegistry) -> str:
    manifest = json.loads(reg.manifests["private/busybox"][reg.tags["private/busybox"]["1"]][1])
    (layer,) = manifest["layers"]
    return layer["digest"]


@pytest.mark.parametrize("range_support", ["honoured", "ignored"])
def test_crictl_pull_survives_cut_downloads(env, range_support):
    reg = _registry(env, honor_range=range_support == "honoured")
    reg.auth = None
    layer = _layer_digest(reg)
    if range_support == "honoured":
        reg.cut_every[layer] = 200_000  # many cuts, each after progress
    else:
        reg.cut_after[layer] = len(reg.blobs["private/busybox"][layer]) // 2
    with serve_http(reg) as host:
        ref = f"{host}/private/busybox:1"
        crictl(env, "pull", ref)
        status = json.loads(crictl(env, "inspecti", "-o", "json", ref).stdout)["status"]
        assert ref in status["repoTags"]
    ranges = [r.headers.get("range") for r in reg.seen("GET", f"/blobs/{layer}")]
    assert ranges[0] is None and len(ranges) >= 2 and ranges[1].startswith("bytes=")
    # the image unpacked and runs: the layer arrived byte for byte
    c = env.client
    pod = pod_config("cut", host_network=True, log_dir=str(env.log_dir / "cut"))
    pid = c.run_pod(pod)
    cid = c.create(pid, container_config("c", ref, command=["/bin/busybox", "sh", "-c", "sleep 60"]), pod)
    c.start(cid)
    assert c.exec(cid, "/bin/busybox", "echo", "ok").stdout == b"ok\n"


def test_crictl_pull_cut_without_progress_fails_clearly_then_succeeds(env):
    reg = _registry(env)
    reg.auth = None
    layer = _layer_digest(reg)
    reg.stall_at[layer] = 1000
    with serve_http(reg) as host:
        ref = f"{host}/private/busybox:1"
        failed = crictl(env, "pull", ref, check=False)
        assert failed.returncode != 0
        assert layer in failed.stderr and "without progress" in failed.stderr, failed.stderr
        images = json.loads(crictl(env, "images", "-o", "json").stdout)["images"]
        assert not [i for i in images if ref in i["repoTags"]]
        del reg.stall_at[layer]
        crictl(env, "pull", ref)
    ranges = [r.headers.get("range") for r in reg.seen("GET", f"/blobs/{layer}")]
    assert ranges.count("bytes=1000-") >= 3
