"""ListContainers / ListPodSandbox at scale (issue 15; cri #679, kubernetes #135049).

500 containers (created, not started: a node's worth of records without 500 processes)
whose labels make the ``ListContainers`` reply over 4 MiB — gRPC's default receive limit
for clients, which a client that keeps it cannot read. containerd's server sends up to
16 MiB (``defaults.DefaultMaxSendMsgSize``, 16 << 20) and Kubernetes' CRI client (crictl,
kubelet) receives up to 16 MiB (``k8s.io/cri-client``'s ``maxMsgSize``), so ``crictl ps -a``
must list all 500, every record whole; the same for a dozen pods whose annotations make
``ListPodSandbox`` over 4 MiB. Restarted, the daemon loads the records back although
containerd's records of them (CRI labels are container labels too) add up to more than one
16 MiB ``List`` reply may carry: it reads them with ``ListStream``, as containerd's client.

Then the containers are removed by four threads while crictl and our client list them and
ask ContainerStatus of what they saw: no call fails, a listed record is always the whole
record that was created, a container whose RemoveContainer returned is never listed again,
and a status asked of a listed container is either the whole status or NotFound."""

from __future__ import annotations

import contextlib
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from pycontainerd.api.cri.runtime.v1 import api_pb2 as cri
from tests.support.crictl import crictl, crictl_json
from tests.support.cri import CRIClient, container_config, cri_env, pod_config

pytestmark = [pytest.mark.integration, pytest.mark.root]

CONTAINERS = 500
PODS = 12
GRPC_DEFAULT_MAX = 4 << 20
CRI_MAX = 16 << 20


@pytest.fixture
def env(tmp_path, registry):
    with cri_env(tmp_path / "cri", registry) as e:
        e.client.pull(e.images.busybox)
        yield e


def _labels(i: int) -> dict[str, str]:
    return {f"scale.test/label-{k}": f"{i:04d}-{k}-" + "l" * 2500 for k in range(8)}


def _annotations(i: int, n: int = 8, size: int = 256) -> dict[str, str]:
    return {f"scale.test/annotation-{k}": f"{i:04d}-{k}-" + "a" * size for k in range(n)}


def _big_client(env) -> CRIClient:
    """Our client with the CRI's 16 MiB receive limit (as crictl and kubelet have)."""
    return CRIClient(env.daemon.address, max_receive=CRI_MAX)


def _over_4mib(env, method: str, request):
    """The reply to ``method``: one a client with gRPC's default limit cannot take, and one
    with the CRI's limit can."""
    with pytest.raises(grpc.RpcError) as err:
        getattr(env.client, method)(request)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    with contextlib.closing(_big_client(env)) as big:
        reply = getattr(big, method)(request)
    assert GRPC_DEFAULT_MAX < reply.ByteSize() < CRI_MAX
    return reply


def _containerd_records_size(env) -> int:
    """Bytes of the List reply of containerd's Containers API in namespace k8s.io."""
    from pycontainerd.api.services.containers.v1 import containers_pb2, containers_pb2_grpc

    with grpc.insecure_channel(f"unix:{env.daemon.address}") as ch:
        stub = containers_pb2_grpc.ContainersStub(ch)
        return sum(m.ByteSize() for m in stub.ListStream(containers_pb2.ListContainersRequest(),
                                                          metadata=[("containerd-namespace", "k8s.io")], timeout=60))


def _check_container(rec: dict, want: dict) -> None:
    """A crictl JSON record against what was created."""
    assert rec["metadata"]["name"] == want["name"]
    assert rec["podSandboxId"] == want["pod"]
    assert rec["labels"] == want["labels"] and rec["annotations"] == want["annotations"]
    assert rec["state"] in ("CONTAINER_CREATED", "CONTAINER_EXITED")
    assert rec["imageRef"].startswith("sha256:") and int(rec["createdAt"]) > 0


def _check_pb(ct, want: dict) -> None:
    assert ct.metadata.name == want["name"] and ct.pod_sandbox_id == want["pod"]
    assert dict(ct.labels) == want["labels"] and dict(ct.annotations) == want["annotations"]
    assert ct.image_ref.startswith("sha256:") and ct.created_at > 0


def test_500_containers_over_4mib_list_whole_and_survive_concurrent_removal(env):
    c = env.client
    pod = pod_config("scale", host_network=True, log_dir=str(env.log_dir / "scale"))
    pod_id = c.run_pod(pod)

    def create(i: int) -> tuple[str, dict]:
        name = f"c{i:04d}"
        cfg = container_config(name, env.images.busybox, command=["/bin/true"], labels=_labels(i),
                               annotations=_annotations(i))
        return c.create(pod_id, cfg, pod), {"name": name, "pod": pod_id, "labels": _labels(i),
                                            "annotations": _annotations(i)}

    with ThreadPoolExecutor(4) as pool:
        want = dict(pool.map(create, range(CONTAINERS)))

    reply = _over_4mib(env, "ListContainers", cri.ListContainersRequest())
    assert len(reply.containers) == CONTAINERS
    for ct in reply.containers:
        _check_pb(ct, want[ct.id])
    big = _big_client(env)
    try:
        # crictl lists all 500, in its table and as JSON, each record whole
        assert sorted(crictl(env, "ps", "-a", "-q", "--no-trunc").stdout.split()) == sorted(want)
        listed = crictl_json(env, "ps", "-a")["containers"]
        assert sorted(r["id"] for r in listed) == sorted(want)
        for rec in listed:
            _check_container(rec, want[rec["id"]])

        # a restarted daemon loads them all back, though containerd's records of them (the
        # CRI labels are container labels too) are too big for one 16 MiB List reply
        assert _containerd_records_size(env) > CRI_MAX
        env.restart()
        big.close()
        big = _big_client(env)
        listed = crictl_json(env, "ps", "-a")["containers"]
        assert sorted(r["id"] for r in listed) == sorted(want)
        for rec in listed:
            _check_container(rec, want[rec["id"]])

        _remove_while_listing(env, big, want)
    finally:
        big.close()
    assert crictl(env, "ps", "-a", "-q").stdout.split() == []


def _remove_while_listing(env, big: CRIClient, want: dict) -> None:
    ids = sorted(want)
    removed: set[str] = set()      # RemoveContainer returned
    lock = threading.Lock()
    done = threading.Event()
    problems: list[str] = []
    lists = {"crictl": 0, "ours": 0}
    listed_once = {"crictl": threading.Event(), "ours": threading.Event()}

    def remover(part: list[str]) -> None:
        client = CRIClient(env.daemon.address)
        try:
            for cid in part:
                client.RemoveContainer(cri.RemoveContainerRequest(container_id=cid))
                with lock:
                    removed.add(cid)
        finally:
            client.close()

    def crictl_lister() -> None:
        while not done.is_set():
            with lock:
                gone = set(removed)
            proc = crictl(env, "ps", "-a", "-o", "json", check=False)
            if proc.returncode != 0:
                problems.append(f"crictl ps failed: {proc.stderr}")
                continue
            for rec in json.loads(proc.stdout)["containers"]:
                if rec["id"] in gone:
                    problems.append(f"crictl listed {rec['id']} after its removal returned")
                try:
                    _check_container(rec, want[rec["id"]])
                except (AssertionError, KeyError) as exc:
                    problems.append(f"crictl listed a partial record {rec['id']}: {exc!r}")
            lists["crictl"] += 1
            listed_once["crictl"].set()

    def our_lister() -> None:
        while not done.is_set():
            with lock:
                gone = set(removed)
            try:
                reply = big.ListContainers(cri.ListContainersRequest())
            except grpc.RpcError as exc:
                problems.append(f"ListContainers failed: {exc.code()} {exc.details()}")
                continue
            for ct in reply.containers:
                if ct.id in gone:
                    problems.append(f"listed {ct.id} after its removal returned")
                try:
                    _check_pb(ct, want[ct.id])
                except (AssertionError, KeyError) as exc:
                    problems.append(f"partial record {ct.id}: {exc!r}")
            for ct in reply.containers[::25]:  # what a kubelet does next with what it listed
                try:
                    st = big.ContainerStatus(cri.ContainerStatusRequest(container_id=ct.id)).status
                except grpc.RpcError as exc:
                    if exc.code() != grpc.StatusCode.NOT_FOUND:
                        problems.append(f"ContainerStatus {ct.id}: {exc.code()} {exc.details()}")
                    continue
                if st.metadata.name != want[ct.id]["name"] or dict(st.annotations) != want[ct.id]["annotations"]:
                    problems.append(f"partial status {ct.id}")
            lists["ours"] += 1
            listed_once["ours"].set()

    listers = [threading.Thread(target=crictl_lister), threading.Thread(target=our_lister)]
    for t in listers:
        t.start()
    try:
        for ev in listed_once.values():
            ev.wait(120)
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(remover, [ids[k::4] for k in range(4)]))
    finally:
        done.set()
        for t in listers:
            t.join(120)
    assert problems == [], problems[:10]
    assert removed == set(want)
    assert lists["crictl"] >= 2 and lists["ours"] >= 2, lists  # some while removals ran


def test_pods_over_4mib_list_whole_with_crictl(env):
    c = env.client
    want = {}
    for i in range(PODS):
        annotations = _annotations(i, n=96, size=8192)  # 768 KiB a pod
        cfg = pod_config(f"big-{i}", host_network=True, log_dir=str(env.log_dir / f"big-{i}"),
                         labels={"scale.test/pod": str(i)}, annotations=annotations)
        want[c.run_pod(cfg)] = (f"big-{i}", annotations)

    assert len(_over_4mib(env, "ListPodSandbox", cri.ListPodSandboxRequest()).items) == PODS

    env.restart()  # the records load back
    pods = crictl_json(env, "pods")["items"]
    assert sorted(p["id"] for p in pods) == sorted(want)
    for p in pods:
        name, annotations = want[p["id"]]
        assert p["metadata"]["name"] == name and p["annotations"] == annotations
        assert p["state"] == "SANDBOX_READY"

    # removed while crictl lists: every listing whole, a removed pod never listed again
    removed: set[str] = set()
    problems: list[str] = []
    done, listed_once = threading.Event(), threading.Event()
    lists = 0

    def lister() -> None:
        nonlocal lists
        while not done.is_set():
            gone = set(removed)
            proc = crictl(env, "pods", "-o", "json", check=False)
            if proc.returncode != 0:
                problems.append(proc.stderr)
                continue
            for p in json.loads(proc.stdout)["items"]:
                if p["id"] in gone or p["annotations"] != want[p["id"]][1]:
                    problems.append(f"pod {p['id']}: removed or partial")
            lists += 1
            listed_once.set()

    t = threading.Thread(target=lister)
    t.start()
    try:
        listed_once.wait(60)
        for pid in want:
            crictl(env, "rmp", "-f", pid)
            removed.add(pid)
    finally:
        done.set()
        t.join(120)
    assert problems == [], problems[:5]
    assert lists >= 2
    assert crictl(env, "pods", "-q").stdout.split() == []
