"""The CRI's stop and remove calls are idempotent, and its list filters exact (containerd
PR #10520, #5954; cri-tools #1536; cri #679): unknown ids and repeats succeed, removing a
running pod kills its containers, a pod whose pause process died can still be stopped and
removed, concurrent removes all succeed; ID prefixes (an ambiguous one matches nothing),
label selectors ANDed, no duplicates. Through our CRI client and Kubernetes' crictl."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time

import grpc
import pytest

from pycontainerd.api.cri.runtime.v1 import api_pb2 as cri
from tests.support.crictl import crictl, crictl_argv
from pycontainerd.testing import process_alive
from tests.support.cri import container_config, cri_env, pod_config

pytestmark = [pytest.mark.integration, pytest.mark.root]

UNKNOWN = "0" * 63 + "1"
STUBBORN = ["/bin/busybox", "sh", "-c", "trap '' TERM; while :; do sleep 1; done"]


@pytest.fixture
def env(tmp_path, registry):
    with cri_env(tmp_path / "cri", registry) as e:
        e.client.pull(e.images.busybox)
        yield e


def _pod(env, name: str, **labels: str) -> tuple[str, cri.PodSandboxConfig]:
    cfg = pod_config(name, host_network=True, log_dir=str(env.log_dir / name), labels=labels)
    return env.client.run_pod(cfg), cfg


def _container(env, pod, name: str, command=STUBBORN, start: bool = True, **labels: str) -> str:
    pid, cfg = pod
    cid = env.client.create(pid, container_config(name, env.images.busybox, command=command, labels=labels), cfg)
    if start:
        env.client.start(cid)
    return cid




def test_unknown_ids_and_repeats_succeed(env):
    c = env.client
    c.StopContainer(cri.StopContainerRequest(container_id=UNKNOWN, timeout=1))
    c.RemoveContainer(cri.RemoveContainerRequest(container_id=UNKNOWN))
    c.StopPodSandbox(cri.StopPodSandboxRequest(pod_sandbox_id=UNKNOWN))
    c.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=UNKNOWN))
    # (crictl rm and rmp ask for the status first and stop at NotFound: client-side, as with containerd)
    for verb in ("stop", "stopp"):
        crictl(env, verb, UNKNOWN)

    pod = _pod(env, "repeat")
    cid = _container(env, pod, "c", command=["/bin/busybox", "sleep", "1000"])
    crictl(env, "stop", "--timeout", "1", cid)
    crictl(env, "stop", cid)
    c.StopContainer(cri.StopContainerRequest(container_id=cid, timeout=1))
    assert c.status(cid).status.state == cri.CONTAINER_EXITED
    crictl(env, "rm", cid)
    for _ in range(2):
        c.RemoveContainer(cri.RemoveContainerRequest(container_id=cid))
    for _ in range(2):
        crictl(env, "stopp", pod[0])
    c.StopPodSandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pod[0]))
    crictl(env, "rmp", pod[0])
    for _ in range(2):
        c.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod[0]))
    assert not c.ListPodSandbox(cri.ListPodSandboxRequest()).items
    assert not c.ListContainers(cri.ListContainersRequest()).containers


def test_removing_a_running_pod_kills_its_containers(env):
    c = env.client
    pod = _pod(env, "running")
    cids = [_container(env, pod, f"c{i}") for i in range(2)]
    pids = [env.client.pid(cid) for cid in cids]
    assert all(process_alive(p) for p in pids)
    c.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod[0]))  # no StopPodSandbox first
    assert not any(process_alive(p) for p in pids)
    assert not c.ListContainers(cri.ListContainersRequest()).containers
    assert not c.ListPodSandbox(cri.ListPodSandboxRequest()).items
    # crictl's forced removal of a running pod does the same
    pod = _pod(env, "running2")
    pid2 = env.client.pid(_container(env, pod, "c"))
    crictl(env, "rmp", "--force", pod[0])
    assert not process_alive(pid2)
    assert json.loads(crictl(env, "pods", "-o", "json").stdout)["items"] == []


def test_pod_whose_pause_died_can_be_stopped_and_removed(env):
    c = env.client
    pod = _pod(env, "orphan")
    cid = _container(env, pod, "c")
    info = json.loads(c.pod_status(pod[0], verbose=True).info["info"])
    os.kill(info["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 30
    while c.pod_status(pod[0]).status.state != cri.SANDBOX_NOTREADY and time.monotonic() < deadline:
        time.sleep(0.05)
    assert c.pod_status(pod[0]).status.state == cri.SANDBOX_NOTREADY
    crictl(env, "stopp", pod[0])
    assert c.status(cid).status.state == cri.CONTAINER_EXITED
    crictl(env, "rmp", pod[0])
    assert not c.ListPodSandbox(cri.ListPodSandboxRequest()).items
    assert not c.ListContainers(cri.ListContainersRequest()).containers


def _concurrently(*calls) -> list[BaseException | None]:
    results: list[BaseException | None] = [None] * len(calls)

    def run(i, fn):
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - reported below
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


def test_concurrent_removes_all_succeed(env):
    c = env.client
    pod = _pod(env, "race")
    cid = _container(env, pod, "c")
    other = _container(env, pod, "d")
    rm_c = lambda: c.RemoveContainer(cri.RemoveContainerRequest(container_id=cid))  # noqa: E731
    rm_p = lambda: c.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod[0]))  # noqa: E731
    assert _concurrently(rm_c, rm_c, rm_p, rm_p) == [None] * 4
    assert not c.ListContainers(cri.ListContainersRequest()).containers
    assert not c.ListPodSandbox(cri.ListPodSandboxRequest()).items
    with pytest.raises(grpc.RpcError) as err:
        c.status(other)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    # two crictl processes removing the same pod at once
    pod = _pod(env, "race2")
    _container(env, pod, "c")
    procs = [subprocess.Popen([*crictl_argv(env.daemon.address), "rmp", "--force", pod[0]],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs


def _shared_prefix(ids: list[str]) -> str | None:
    """A one-character prefix that two of ``ids`` share."""
    seen: set[str] = set()
    for i in ids:
        if i[0] in seen:
            return i[0]
        seen.add(i[0])
    return None


def test_list_filters_prefixes_labels_and_no_duplicates(env):
    c = env.client
    a = _pod(env, "pa", team="x", tier="1")
    b = _pod(env, "pb", team="x", tier="2")
    one = _container(env, a, "one", start=False, app="x", tier="1")
    two = _container(env, a, "two", start=False, app="x", tier="2")
    three = _container(env, b, "three", start=False, app="y", tier="1")
    cids = [one, two, three]
    n = 0
    while _shared_prefix(cids) is None:  # at most 16 more: pigeonhole on the first hex digit
        cids.append(_container(env, b, f"extra{n}", start=False, app="z"))
        n += 1

    def listed(**kw) -> list[str]:
        got = [x.id for x in c.ListContainers(cri.ListContainersRequest(filter=cri.ContainerFilter(**kw))).containers]
        assert len(got) == len(set(got)), got  # no duplicates
        return got

    assert sorted(listed()) == sorted(cids)
    assert listed(label_selector={"app": "x", "tier": "1"}) == [one]  # ANDed
    assert listed(label_selector={"app": "x", "tier": "3"}) == []
    assert sorted(listed(label_selector={"tier": "1"})) == sorted([one, three])
    assert listed(id=one[:12]) == [one]
    assert listed(id=_shared_prefix(cids)) == []  # ambiguous: nothing
    assert sorted(listed(pod_sandbox_id=a[0][:12])) == sorted([one, two])
    assert listed(pod_sandbox_id=a[0][:12], label_selector={"tier": "2"}) == [two]
    # crictl sends the same filters
    assert crictl(env, "ps", "-a", "-q", "--label", "app=x", "--label", "tier=1").stdout.split() == [one]
    assert crictl(env, "ps", "-a", "-q", "--id", one[:12]).stdout.split() == [one]
    assert crictl(env, "ps", "-a", "-q", "--label", "app=x", "--label", "tier=3").stdout.split() == []

    pods = [a[0], b[0]]
    n = 0
    while _shared_prefix(pods) is None:
        pods.append(_pod(env, f"pextra{n}", team="z")[0])
        n += 1

    def listed_pods(**kw) -> list[str]:
        got = [x.id for x in c.ListPodSandbox(cri.ListPodSandboxRequest(filter=cri.PodSandboxFilter(**kw))).items]
        assert len(got) == len(set(got)), got
        return got

    assert sorted(listed_pods()) == sorted(pods)
    assert listed_pods(label_selector={"team": "x", "tier": "2"}) == [b[0]]
    assert listed_pods(id=a[0][:10]) == [a[0]]
    assert listed_pods(id=_shared_prefix(pods)) == []
    assert crictl(env, "pods", "-q", "--label", "team=x", "--label", "tier=1").stdout.split() == [a[0]]
    assert crictl(env, "pods", "-q", "--id", b[0][:10]).stdout.split() == [b[0]]
