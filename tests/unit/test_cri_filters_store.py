"""CRI list filters, the stores (prefix lookup, name reservation) and the persisted halves of
sandboxes and containers."""

from __future__ import annotations

import pytest

from pycontainerd.api.cri.runtime.v1 import api_pb2 as cri
from pycontainerd.cri.filters import (
    chunks,
    filter_container_stats,
    filter_containers,
    filter_sandbox_stats,
    filter_sandboxes,
    match_labels,
)
from pycontainerd.cri.state import ContainerState, SandboxState
from pycontainerd.cri.store import Container, Sandbox, Store
from pycontainerd.errdefs import AlreadyExists, InvalidArgument, NotFound


def sandbox(sid, state=SandboxState.READY, labels=None, created=1):
    cfg = cri.PodSandboxConfig(metadata=cri.PodSandboxMetadata(name=sid, uid="u", namespace="ns"),
                               labels=labels or {})
    sb = Sandbox(id=sid, name=f"{sid}_ns_u_0", config=cfg, runtime_handler="", runtime_name="runc",
                 created_at=created)
    sb.state = state
    return sb


def container(cid, sid, state=ContainerState.RUNNING, labels=None, created=1):
    cfg = cri.ContainerConfig(metadata=cri.ContainerMetadata(name=cid), labels=labels or {})
    c = Container(id=cid, name=cid, sandbox_id=sid, config=cfg, created_at=created, image_ref="busybox",
                  image_id="sha256:1")
    c.state = state
    return c


@pytest.fixture
def stores():
    sbs: Store[Sandbox] = Store("sandbox")
    cts: Store[Container] = Store("container")
    sbs.add(sandbox("aaa111", labels={"app": "web", "tier": "a"}, created=1))
    sbs.add(sandbox("aaa222", SandboxState.NOTREADY, labels={"app": "web"}, created=2))
    sbs.add(sandbox("bbb333", labels={"app": "db"}, created=3))
    cts.add(container("c1", "aaa111", labels={"k": "v"}))
    cts.add(container("c2", "aaa111", ContainerState.EXITED))
    cts.add(container("d3", "bbb333", ContainerState.CREATED, labels={"k": "v"}))
    return sbs, cts


def test_match_labels():
    assert match_labels({}, {"a": "1"})
    assert match_labels({"a": "1"}, {"a": "1", "b": "2"})
    assert not match_labels({"a": "1", "b": "3"}, {"a": "1", "b": "2"})
    assert not match_labels({"c": ""}, {"a": "1"})


def test_sandbox_filters(stores):
    sbs, _ = stores

    def ids(f):
        return [s.id for s in filter_sandboxes(sbs.list(), f, sbs.resolve)]

    assert ids(None) == ["aaa111", "aaa222", "bbb333"]
    assert ids(cri.PodSandboxFilter()) == ["aaa111", "aaa222", "bbb333"]
    assert ids(cri.PodSandboxFilter(id="bbb")) == ["bbb333"]            # unique prefix
    assert ids(cri.PodSandboxFilter(id="aaa")) == []                    # ambiguous prefix: no match
    assert ids(cri.PodSandboxFilter(id="zzz")) == []
    ready = cri.PodSandboxFilter(state=cri.PodSandboxStateValue(state=cri.SANDBOX_READY))
    assert ids(ready) == ["aaa111", "bbb333"]
    notready = cri.PodSandboxFilter(state=cri.PodSandboxStateValue(state=cri.SANDBOX_NOTREADY))
    assert ids(notready) == ["aaa222"]
    assert ids(cri.PodSandboxFilter(label_selector={"app": "web"})) == ["aaa111", "aaa222"]
    both = cri.PodSandboxFilter(label_selector={"app": "web"}, state=cri.PodSandboxStateValue(state=cri.SANDBOX_READY))
    assert ids(both) == ["aaa111"]
    assert [s.id for s in filter_sandbox_stats(sbs.list(), cri.PodSandboxStatsFilter(label_selector={"app": "db"}),
                                               sbs.resolve)] == ["bbb333"]


def test_container_filters(stores):
    sbs, cts = stores

    def ids(f):
        return [c.id for c in filter_containers(cts.list(), f, cts.resolve, sbs.resolve)]

    assert ids(None) == ["c1", "c2", "d3"]
    assert ids(cri.ContainerFilter(id="d")) == ["d3"]
    assert ids(cri.ContainerFilter(id="c")) == []            # ambiguous
    assert ids(cri.ContainerFilter(pod_sandbox_id="aaa111")) == ["c1", "c2"]
    assert ids(cri.ContainerFilter(pod_sandbox_id="bbb")) == ["d3"]
    # CONTAINER_CREATED is 0: the wrapper tells "filter on CREATED" from "no filter"
    assert ids(cri.ContainerFilter(state=cri.ContainerStateValue(state=cri.CONTAINER_CREATED))) == ["d3"]
    assert ids(cri.ContainerFilter(state=cri.ContainerStateValue(state=cri.CONTAINER_EXITED))) == ["c2"]
    assert ids(cri.ContainerFilter(label_selector={"k": "v"})) == ["c1", "d3"]
    assert ids(cri.ContainerFilter(label_selector={"k": "v"}, pod_sandbox_id="aaa111")) == ["c1"]
    stats = filter_container_stats(cts.list(), cri.ContainerStatsFilter(pod_sandbox_id="aaa111",
                                                                        label_selector={"k": "v"}),
                                   cts.resolve, sbs.resolve)
    assert [c.id for c in stats] == ["c1"]


def test_chunks():
    assert chunks([]) == []
    assert chunks(list(range(5)), 2) == [[0, 1], [2, 3], [4]]


def test_store_lookup_and_names(stores):
    sbs, _ = stores
    assert sbs.get("bbb").id == "bbb333"
    with pytest.raises(NotFound, match='find sandbox "nope"'):
        sbs.get("nope")
    with pytest.raises(InvalidArgument, match="ambiguous"):
        sbs.get("aaa")
    assert sbs.find("") is None
    with pytest.raises(AlreadyExists):
        sbs.add(sandbox("aaa111"))
    sbs.names.reserve("sandbox", "web_ns_u_0", "aaa111")
    sbs.names.reserve("sandbox", "web_ns_u_0", "aaa111")  # the holder may reserve again
    with pytest.raises(AlreadyExists) as err:
        sbs.names.reserve("sandbox", "web_ns_u_0", "bbb333")
    # kubelet parses the holder's id out of this message
    assert 'name "web_ns_u_0" is reserved for "aaa111"' in str(err.value)
    sbs.names.release("web_ns_u_0", "bbb333")  # not the holder: no effect
    assert sbs.names.owner("web_ns_u_0") == "aaa111"
    sbs.names.release("web_ns_u_0", "aaa111")
    sbs.names.reserve("sandbox", "web_ns_u_0", "bbb333")


def test_sandbox_and_container_round_trip_through_metadata_and_status():
    sb = sandbox("s1", labels={"a": "b"})
    sb.config.dns_config.servers.append("10.0.0.10")
    sb.netns_path, sb.ip, sb.additional_ips, sb.pid, sb.network_ready = "/var/run/netns/cni-x", "10.1.0.2", ["fd::2"], 42, True
    back = Sandbox.from_metadata(sb.metadata(), sb.status())
    assert (back.id, back.name, back.ip, back.additional_ips, back.netns_path, back.pid, back.state,
            back.network_ready) == ("s1", sb.name, "10.1.0.2", ["fd::2"], sb.netns_path, 42, SandboxState.READY, True)
    assert back.config == sb.config
    c = container("c1", "s1", ContainerState.EXITED)
    c.config.linux.resources.memory_limit_in_bytes = 1 << 20
    c.exit_code, c.reason, c.log_path, c.resources.cpu_shares = 3, "Error", "/l/0.log", 512
    back_c = Container.from_metadata(c.metadata(), c.status())
    assert (back_c.exit_code, back_c.reason, back_c.log_path, back_c.state) == (3, "Error", "/l/0.log",
                                                                                ContainerState.EXITED)
    assert back_c.config == c.config and back_c.resources.cpu_shares == 512 and back_c.exited.is_set()
    # no status file: the state is unknown until the task says otherwise
    assert Container.from_metadata(c.metadata(), None).state is ContainerState.UNKNOWN
