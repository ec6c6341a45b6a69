"""Prometheus metrics (pycontainerd.server.metrics): the per-RPC counters through the real
interceptor on a real grpc.aio server, the store gauges read from a real LMDB and snapshotter,
the HTTP endpoint, and the [metrics] config."""

from __future__ import annotations

import asyncio
import os

import grpc
import httpx
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pycontainerd import config as config_mod
from pycontainerd import metrics as rpc_hook
from pycontainerd import namespaces
from pycontainerd.descriptor import Descriptor
from pycontainerd.errdefs import InvalidArgument
from pycontainerd.metadata.containers import Container, ContainerStore, Runtime
from pycontainerd.metadata.db import MetadataDB
from pycontainerd.metadata.images import Image, ImageStore
from pycontainerd.metadata.snapshots import SnapshotStore
from pycontainerd.plugin import Plugin, PluginSet, PluginType, Registration
from pycontainerd.server.interceptors import RequestInterceptor
from pycontainerd.server.metrics import (
    GO_CODE_NAMES,
    PATH,
    GRPCMetrics,
    MetricsEndpoint,
    StoreCollector,
    count_objects,
    method_labels,
    tree_usage,
)
from pycontainerd.snapshots.native import NativeSnapshotter
from pycontainerd.typeurl import OCI_SPEC_URL, AnyValue


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """``{(sample name, sorted label items): value}`` parsed by prometheus-client's parser."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def render(*collectors) -> str:
    registry = CollectorRegistry(auto_describe=False)
    for c in collectors:
        registry.register(c)
    return generate_latest(registry).decode()


def test_code_names_are_gos():
    assert GO_CODE_NAMES[grpc.StatusCode.OK] == "OK"
    assert GO_CODE_NAMES[grpc.StatusCode.CANCELLED] == "Canceled"
    assert GO_CODE_NAMES[grpc.StatusCode.NOT_FOUND] == "NotFound"
    assert GO_CODE_NAMES[grpc.StatusCode.DEADLINE_EXCEEDED] == "DeadlineExceeded"
    assert GO_CODE_NAMES[grpc.StatusCode.FAILED_PRECONDITION] == "FailedPrecondition"
    assert len(set(GO_CODE_NAMES.values())) == len(grpc.StatusCode)


def test_method_labels_from_descriptors():
    import pycontainerd.api.services.content.v1.content_pb2  # noqa: F401  (registers the services)
    import pycontainerd.api.services.events.v1.events_pb2  # noqa: F401
    import pycontainerd.api.services.tasks.v1.tasks_pb2  # noqa: F401

    assert method_labels("/containerd.services.tasks.v1.Tasks/Create") == (
        "unary", "containerd.services.tasks.v1.Tasks", "Create")
    assert method_labels("/containerd.services.events.v1.Events/Subscribe")[0] == "server_stream"
    assert method_labels("/containerd.services.content.v1.Content/Write")[0] == "bidi_stream"
    assert method_labels("/no.such.Service/Call") == ("unary", "no.such.Service", "Call")


async def test_interceptor_counts_every_call_by_method_and_code(tmp_path):
    server = grpc.aio.server(interceptors=[RequestInterceptor()])
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    await servicer.set("known", health_pb2.HealthCheckResponse.SERVING)
    address = f"unix:{tmp_path}/s.sock"
    server.add_insecure_port(address)
    await server.start()
    m = GRPCMetrics(histogram=True)
    previous = rpc_hook.set_sink(m)
    check = "/grpc.health.v1.Health/Check"
    watch = "/grpc.health.v1.Health/Watch"
    try:
        async with grpc.aio.insecure_channel(address) as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            for _ in range(2):
                await stub.Check(health_pb2.HealthCheckRequest(service="known"))
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.Check(health_pb2.HealthCheckRequest(service="unknown"))
            assert err.value.code() == grpc.StatusCode.NOT_FOUND
            # a bad namespace header means nothing to a service that works in no namespace
            await stub.Check(health_pb2.HealthCheckRequest(service="known"),
                             metadata=[("containerd-namespace", "no/slash")])
            call = stub.Watch(health_pb2.HealthCheckRequest(service="known"))
            assert (await call.read()).status == health_pb2.HealthCheckResponse.SERVING
            call.cancel()
            for _ in range(100):  # the server sees the cancellation asynchronously
                if any(method == watch for method, _ in m._series):
                    break
                await asyncio.sleep(0.05)
    finally:
        rpc_hook.set_sink(previous)
        await server.stop(None)
    got = samples(render(m))
    base = (("grpc_service", "grpc.health.v1.Health"), ("grpc_type", "unary"))

    def handled(method, code, kind="unary"):
        labels = {"grpc_code": code, "grpc_method": method, "grpc_service": "grpc.health.v1.Health",
                  "grpc_type": kind}
        return got.get(("grpc_server_handled_total", tuple(sorted(labels.items()))))

    assert handled("Check", "OK") == 3
    assert handled("Check", "NotFound") == 1
    assert handled("Watch", "Canceled", "server_stream") == 1
    ok = tuple(sorted((("grpc_code", "OK"), ("grpc_method", "Check"), *base)))
    assert got[("grpc_server_handling_seconds_count", ok)] == 3
    assert got[("grpc_server_handling_seconds_sum", ok)] > 0
    buckets = sorted((float(dict(k[1])["le"]), v) for k, v in got.items()
                     if k[0] == "grpc_server_handling_seconds_bucket" and set(ok) <= set(k[1]))
    assert [le for le, _ in buckets][-1] == float("inf") and buckets[-1][1] == 3
    assert all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:]))  # cumulative
    assert {le for le, _ in buckets} == {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, float("inf")}


def test_no_histogram_unless_asked():
    m = GRPCMetrics(histogram=False)
    m.observe("/a.B/C", "OK", None, 0.0)
    text = render(m)
    assert "grpc_server_handled_total" in text and "grpc_server_handling_seconds" not in text


def test_preregister_starts_every_method_at_zero_for_every_code():
    """As go-grpc-prometheus's ``Register(server)``: each method of each served service has a
    ``grpc_server_handled_total`` series per status code (17) before any call; an unknown
    service is skipped; a pre-started series gets no histogram until it is called."""
    from google.protobuf import descriptor_pool

    methods = {m.name for m in descriptor_pool.Default().FindServiceByName("grpc.health.v1.Health").methods}
    assert {"Check", "Watch"} <= methods
    m = GRPCMetrics(histogram=True)
    assert m.preregister(["grpc.health.v1.Health", "no.such.Service"]) == len(methods)
    m.observe("/grpc.health.v1.Health/Check", "OK", None, 0.0)
    got = samples(render(m))
    handled = {(dict(k[1])["grpc_method"], dict(k[1])["grpc_type"], dict(k[1])["grpc_code"]): v
               for k, v in got.items() if k[0] == "grpc_server_handled_total"}
    assert len(handled) == len(methods) * 17 and {name for name, _, _ in handled} == methods
    assert {code for _, _, code in handled} == set(GO_CODE_NAMES.values())
    assert handled[("Check", "unary", "OK")] == 1
    assert handled[("Watch", "server_stream", "DataLoss")] == 0
    assert sum(handled.values()) == 1
    counts = [k for k in got if k[0] == "grpc_server_handling_seconds_count"]
    assert [dict(k[1])["grpc_code"] for k in counts] == ["OK"] and dict(counts[0][1])["grpc_method"] == "Check"


def test_hook_is_inert_without_a_sink():
    assert rpc_hook.sink() is None
    rpc_hook.observe_rpc("/a.B/C", "OK", None, 0.0)  # nothing to count into, nothing raised
    m = GRPCMetrics(histogram=False)
    rpc_hook.set_sink(m)
    try:
        rpc_hook.observe_rpc("/a.B/C", "CANCELLED", None, 0.0)
    finally:
        rpc_hook.set_sink(None)
    assert m._series == {("/a.B/C", "Canceled"): [1, 0.0, [0] * 12]}


def _plugins(instances) -> PluginSet:
    plugins = PluginSet()
    for (type_, id_), instance in instances.items():
        reg = Registration(type=type_, id=id_, init=lambda ic: None)
        plugins.by_uri[reg.uri] = Plugin(reg, instance=instance)
    return plugins


async def test_store_gauges_count_what_the_stores_hold(tmp_path):
    db = MetadataDB(tmp_path / "meta")
    native = NativeSnapshotter(tmp_path / "native")
    try:
        snaps = SnapshotStore(db, "native", native)
        target = Descriptor("application/vnd.oci.image.manifest.v1+json", "sha256:" + "a" * 64, 10)
        for ns, n_images, n_containers in (("team-a", 2, 1), ("team-b", 0, 3)):
            with namespaces.using(ns):
                for i in range(n_images):
                    await ImageStore(db).create(Image(f"example.com/img:{i}", target))
                for i in range(n_containers):
                    await ContainerStore(db).create(Container(f"c{i}", Runtime("io.containerd.runc.v2"),
                                                             spec=AnyValue(OCI_SPEC_URL, b"{}")))
        with namespaces.using("team-a"):
            mounts = await snaps.prepare("work")
            with open(os.path.join(mounts[0].source, "data"), "wb") as f:
                f.write(os.urandom(64 << 10))
        counts = count_objects(db)
        assert (counts.namespaces, counts.images, counts.containers, counts.snapshots) == (
            2, {"team-a": 2}, {"team-a": 1, "team-b": 3}, {("team-a", "native"): 1})

        collector = StoreCollector(_plugins({(PluginType.METADATA, "lmdb"): db,
                                               (PluginType.SNAPSHOTTER, "native"): native}))
        await collector.refresh()
        got = samples(render(collector))
        assert got[("pycontainerd_images", (("namespace", "team-a"),))] == 2
        assert ("pycontainerd_images", (("namespace", "team-b"),)) not in got  # nothing: no series
        assert got[("pycontainerd_containers", (("namespace", "team-b"),))] == 3
        assert got[("pycontainerd_snapshots", (("namespace", "team-a"), ("snapshotter", "native")))] == 1
        assert got[("pycontainerd_snapshotter_usage_bytes", (("snapshotter", "native"),))] >= 64 << 10
        assert got[("pycontainerd_snapshotter_usage_inodes", (("snapshotter", "native"),))] >= 2
        assert not any(name == "pycontainerd_tasks" for name, _ in got)  # no runtime plugin: no tasks

        with namespaces.using("team-a"):
            await snaps.remove("work")
        for info in await native.walk():  # what the garbage collector does to unreferenced snapshots
            await native.remove(info.name)
        with namespaces.using("team-b"):
            await ContainerStore(db).delete("c0")
        await collector.refresh()
        got = samples(render(collector))
        assert got[("pycontainerd_containers", (("namespace", "team-b"),))] == 2
        assert not any(name == "pycontainerd_snapshots" for name, _ in got)
        assert got[("pycontainerd_snapshotter_usage_bytes", (("snapshotter", "native"),))] < 64 << 10
    finally:
        native.close_sync()
        db.close()


def test_tree_usage_counts_hard_links_once(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(os.urandom(32 << 10))
    os.link(tmp_path / "d" / "f", tmp_path / "d" / "g")
    size, inodes = tree_usage(tmp_path)
    assert inodes == 2  # d and f(=g)
    assert 32 << 10 <= size < 2 * (32 << 10) + os.stat(tmp_path / "d").st_blocks * 512
    assert tree_usage(tmp_path / "gone") == (0, 0)


async def test_endpoint_serves_v1_metrics_and_stops(tmp_path):
    db = MetadataDB(tmp_path / "meta")
    endpoint = MetricsEndpoint(_plugins({(PluginType.METADATA, "lmdb"): db}), grpc_histogram=False)
    try:
        await endpoint.start("127.0.0.1:0")
        assert rpc_hook.sink() is endpoint.grpc
        rpc_hook.observe_rpc("/containerd.services.version.v1.Version/Version", "OK", None, 0.0)
        base = f"http://{endpoint.server.address}"
        async with httpx.AsyncClient(base_url=base) as http:
            r = await http.get(PATH)
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
            got = samples(r.text)
            assert got[("grpc_server_handled_total", (("grpc_code", "OK"), ("grpc_method", "Version"),
                        ("grpc_service", "containerd.services.version.v1.Version"), ("grpc_type", "unary")))] == 1
            assert got[("pycontainerd_namespaces", ())] == 0
            assert got[("process_resident_memory_bytes", ())] > 0
            assert any(name == "pycontainerd_build_info" for name, _ in got)
            assert not any(name.endswith("_created") for name, _ in got)
            om = await http.get(PATH, headers={"accept": "application/openmetrics-text; version=1.0.0"})
            assert om.headers["content-type"].startswith("application/openmetrics-text")
            assert om.text.rstrip().endswith("# EOF")
            assert (await http.get("/metrics")).status_code == 404
            assert (await http.post(PATH)).status_code == 405
    finally:
        await endpoint.close()
        db.close()
    assert rpc_hook.sink() is None
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base}{PATH}", timeout=2)


async def test_endpoint_address_in_use_is_a_clear_error(tmp_path):
    first = MetricsEndpoint(PluginSet())
    await first.start("127.0.0.1:0")
    try:
        second = MetricsEndpoint(PluginSet())
        with pytest.raises(Exception, match="cannot listen for the metrics endpoint on"):
            await second.start(first.server.address)
        assert rpc_hook.sink() is first.grpc
    finally:
        await first.close()


def test_metrics_config_section():
    cfg = config_mod.from_dict({"metrics": {"address": "127.0.0.1:1338", "grpc_histogram": True}})
    assert (cfg.metrics.address, cfg.metrics.grpc_histogram) == ("127.0.0.1:1338", True)
    assert (config_mod.Config().metrics.address, config_mod.Config().metrics.grpc_histogram) == ("", False)
    with pytest.raises(InvalidArgument, match=r"\[metrics\] grpc_histogram must be a bool"):
        config_mod.from_dict({"metrics": {"grpc_histogram": "yes"}})
    with pytest.raises(InvalidArgument, match=r"unknown option\(s\) in \[metrics\]: adress"):
        config_mod.from_dict({"metrics": {"adress": ":1"}})
