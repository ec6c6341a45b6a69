"""CRI PullImage against registries whose token servers misbehave the way public ones do
(containerd #4982, #9224): a POST answered by an HTML login page, tokens named ``token`` or
``access_token``, challenges without a scope, 2-second tokens; credentials as
``username``/``password`` and as ``auth``; a failed re-pull leaves the image it had.

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
from tests.support.cri import cri_env
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
