"""CRI corners of issue 15 through Kubernetes' ``crictl``, beyond C17–C19:

- ContainerStatus: reason ``Completed`` / ``Error`` / ``OOMKilled`` with their exit codes,
  ``startedAt`` / ``finishedAt`` per state (created: neither; running: started only;
  exited: both, in order), and the very same values after a daemon restart (containerd
  #9080, PR #4656);
- pulling by digest and by tag gives one image ID, with the right ``repoTags`` and one
  ``repoDigests`` entry (cri #1343);
- the attestation manifests of an index (BuildKit's ``unknown/unknown`` entries) are never
  fetched nor unpacked (containerd #8243).
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timezone

import grpc
import pytest

from pycontainerd.api.services.content.v1 import content_pb2, content_pb2_grpc
from pycontainerd.remotes.reference import parse_normalized
from tests.integration.test_cri_corners import Pod, wait_for
from tests.support.cri import copy_image, cri_env
from tests.support.crictl import crictl, crictl_json

pytestmark = [pytest.mark.integration, pytest.mark.root]


@pytest.fixture
def netns_env(tmp_path, registry, ctr_bin):
    with cri_env(tmp_path / "cri", registry, netns=True, ctr=ctr_bin) as e:
        yield e


@pytest.fixture
def pull_env(tmp_path, registry):
    """A daemon on the machine's network, so it reaches the registry on 127.0.0.1 itself."""
    with cri_env(tmp_path / "cri", registry) as e:
        yield e


def status_of(env, cid: str) -> dict:
    return crictl_json(env, "inspect", cid)["status"]


TIMES_AND_OUTCOME = ("state", "createdAt", "startedAt", "finishedAt", "exitCode", "reason")


def outcome(st: dict) -> dict:
    return {k: st.get(k) for k in TIMES_AND_OUTCOME}


def test_container_status_reasons_and_times_survive_a_restart(netns_env):
    env = netns_env
    pod = Pod(env, "status")
    created = pod.container("created", ["sleep", "1000"], start=False)
    running = pod.container("running", ["sleep", "1000"])
    completed = pod.container("completed", ["true"])
    error = pod.container("error", ["sh", "-c", "exit 3"])
    oom = pod.container("oom", ["sh", "-c", "a=$(head -c 300000000 /dev/zero | tr '\\0' x); echo survived"],
                        memory_limit=24 << 20)
    for cid in (completed, error, oom):
        wait_for(lambda cid=cid: status_of(env, cid)["state"] == "CONTAINER_EXITED", what=f"{cid} to exit")

    before = {cid: status_of(env, cid) for cid in (created, running, completed, error, oom)}
    print(json.dumps({k: outcome(v) for k, v in before.items()}, indent=1))
    st = before[created]
    assert st["state"] == "CONTAINER_CREATED" and not st.get("reason")
    assert _ns(st, "createdAt") > 0 and _ns(st, "startedAt") == 0 and _ns(st, "finishedAt") == 0
    st = before[running]
    assert st["state"] == "CONTAINER_RUNNING" and not st.get("reason") and not st.get("exitCode")
    assert _ns(st, "startedAt") >= _ns(st, "createdAt") > 0 and _ns(st, "finishedAt") == 0
    for cid, reason, code in ((completed, "Completed", 0), (error, "Error", 3), (oom, "OOMKilled", 137)):
        st = before[cid]
        assert (st["state"], st.get("reason"), st.get("exitCode", 0)) == ("CONTAINER_EXITED", reason, code), st
        assert _ns(st, "finishedAt") >= _ns(st, "startedAt") >= _ns(st, "createdAt") > 0

    env.restart()
    after = {cid: status_of(env, cid) for cid in before}
    assert {k: outcome(v) for k, v in after.items()} == {k: outcome(v) for k, v in before.items()}
    # the running one still runs, and stopping it now records its end
    crictl(env, "stop", "--timeout", "0", running)
    st = status_of(env, running)
    assert (st["state"], st.get("reason"), st.get("exitCode")) == ("CONTAINER_EXITED", "Error", 137)
    assert _ns(st, "finishedAt") >= _ns(st, "startedAt") == _ns(before[running], "startedAt")


def _ns(status: dict, key: str) -> int:
    """A time crictl prints (RFC 3339 in UTC, Go's zero time for 0) as nanoseconds."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z", status[key])
    assert m, status[key]
    if m.group(1).startswith("0001-01-01"):
        return 0
    secs = int(datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp())
    return secs * 1_000_000_000 + int((m.group(2) or "0").ljust(9, "0"))


# --------------------------------------------------------------------------------------
# images


def test_pull_by_digest_and_by_tag_is_one_image(pull_env, busybox_image):
    env = pull_env
    repo = f"{busybox_image.registry.host}/library/busybox"
    by_digest = f"{repo}@{busybox_image.digest}"
    crictl(env, "pull", by_digest)
    first = crictl_json(env, "inspecti", by_digest)["status"]
    assert first["repoTags"] in ([], None) or not first.get("repoTags")
    assert first["repoDigests"] == [by_digest]
    crictl(env, "pull", f"{repo}:latest")
    second = crictl_json(env, "inspecti", f"{repo}:latest")["status"]
    assert second["id"] == first["id"] == busybox_image.config_digest
    assert second["repoTags"] == [f"{repo}:latest"] and second["repoDigests"] == [by_digest]
    listed = crictl_json(env, "images")["images"]
    assert [i["id"] for i in listed if i["id"] == first["id"]] == [first["id"]]
    # a second tag of the same image joins it; still one digest
    copy_image(f"{repo}:latest", f"{repo}:other")
    crictl(env, "pull", f"{repo}:other")
    third = crictl_json(env, "inspecti", first["id"])["status"]
    assert sorted(third["repoTags"]) == [f"{repo}:latest", f"{repo}:other"]
    assert third["repoDigests"] == [by_digest]
    assert str(parse_normalized(f"{repo}:latest")) in third["repoTags"]


def _push_blob(client, repo: str, blob: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    r = client.post(f"/v2/{repo}/blobs/uploads/")
    r.raise_for_status()
    loc = r.headers["location"]
    r = client.put(f"{loc}{'&' if '?' in loc else '?'}digest={digest}", content=blob,
                   headers={"Content-Type": "application/octet-stream"})
    r.raise_for_status()
    return digest


def _put_manifest(client, repo: str, ref: str, body: bytes, media_type: str) -> str:
    r = client.put(f"/v2/{repo}/manifests/{ref}", content=body, headers={"Content-Type": media_type})
    r.raise_for_status()
    return "sha256:" + hashlib.sha256(body).hexdigest()


def test_attestation_manifests_are_never_fetched(pull_env, busybox_image):
    env = pull_env
    reg, repo = busybox_image.registry, "library/busybox"
    img = busybox_image.oci
    statement = json.dumps({"_type": "https://in-toto.io/Statement/v0.1",
                            "predicateType": "https://spdx.dev/Document", "predicate": {}}).encode()
    with reg.client() as c:
        config = _push_blob(c, repo, b"{}")
        layer = _push_blob(c, repo, statement)
        att = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
            "layers": [{"mediaType": "application/vnd.in-toto+json", "digest": layer, "size": len(statement),
                        "annotations": {"in-toto.io/predicate-type": "https://spdx.dev/Document"}}],
        }).encode()
        att_digest = _put_manifest(c, repo, "sha256:" + hashlib.sha256(att).hexdigest(), att,
                                   "application/vnd.oci.image.manifest.v1+json")
        index = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {"mediaType": img.manifest_media_type, "digest": img.manifest_digest, "size": img.size,
                 "platform": {"os": busybox_image.os, "architecture": busybox_image.architecture,
                              **({"variant": busybox_image.variant} if busybox_image.variant else {})}},
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": att_digest, "size": len(att),
                 "platform": {"os": "unknown", "architecture": "unknown"},
                 "annotations": {"vnd.docker.reference.type": "attestation-manifest",
                                 "vnd.docker.reference.digest": img.manifest_digest}},
            ]}).encode()
        _put_manifest(c, repo, "attested", index, "application/vnd.oci.image.index.v1+json")
        # the attestation's layer is gone from the registry: fetching it would fail the pull
        c.delete(f"/v2/{repo}/blobs/{layer}").raise_for_status()
    ref = f"{reg.host}/{repo}:attested"
    crictl(env, "pull", ref)
    st = crictl_json(env, "inspecti", ref)["status"]
    assert st["id"] == img.config_digest
    # nothing of the attestation is in the daemon's content store
    content = _content_digests(env)
    assert img.manifest_digest in content and img.config_digest in content
    assert not {att_digest, config, layer} & content, content
    # and a container of the image runs
    pod = Pod(env, "attested")
    cid = pod.container("main", ["sleep", "1000"], image=ref)
    assert crictl(env, "exec", "--sync", cid, "echo", "ran").stdout.strip() == "ran"


def _content_digests(env) -> set[str]:
    with grpc.insecure_channel(f"unix:{env.daemon.address}") as ch:
        stub = content_pb2_grpc.ContentStub(ch)
        out = set()
        for resp in stub.List(content_pb2.ListContentRequest(), metadata=[("containerd-namespace", "k8s.io")],
                              timeout=30):
            out.update(i.digest for i in resp.info)
    return out
