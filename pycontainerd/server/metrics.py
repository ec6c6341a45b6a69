"""Prometheus metrics, served at ``http://<[metrics] address>/v1/metrics`` as containerd does.

Made with ``prometheus-client`` into a registry of the daemon's own. Families:

===============================================  =============================================
``grpc_server_handled_total``                    counter: RPCs completed, by ``grpc_type``
                                                 (unary, client_stream, server_stream,
                                                 bidi_stream), ``grpc_service``, ``grpc_method``,
                                                 ``grpc_code`` (Go names: ``OK``, ``NotFound``…)
                                                 — the names go-grpc-prometheus gives containerd;
                                                 every method of every served service starts
                                                 at 0 for every code, as its ``Register`` does
``grpc_server_handling_seconds``                 histogram of the same, seconds, only with
                                                 ``[metrics] grpc_histogram = true``
``pycontainerd_build_info``                      1, labels ``version``, ``revision``
``pycontainerd_namespaces``                      namespaces in the metadata store
``pycontainerd_images``                          images, by ``namespace``
``pycontainerd_containers``                      containers, by ``namespace``
``pycontainerd_snapshots``                       snapshots, by ``namespace``, ``snapshotter``
``pycontainerd_tasks``                           tasks, by ``namespace`` and ``state``
                                                 (``CREATED``, ``RUNNING``, ``PAUSED``,
                                                 ``STOPPED``, ``UNKNOWN``: the shim's answer)
``pycontainerd_snapshotter_usage_bytes``         disk blocks (bytes) under each snapshotter's
``pycontainerd_snapshotter_usage_inodes``        snapshots dir, hard links counted once
``process_*``, ``python_*``                      prometheus-client's process, platform and GC
                                                 collectors (RSS, fds, CPU seconds…)
===============================================  =============================================

The gauges are computed when scraped, from the stores themselves (:class:`StoreCollector`),
never by hooking writes; a series with nothing to count is absent (a deleted task's series
goes away). The per-RPC hook (:func:`pycontainerd.metrics.observe_rpc`, called once by the
interceptor at the end of every call) costs a dict lookup and a counter increment, plus a histogram
observation when enabled; with metrics off it is one global read.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import functools
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from google.protobuf import descriptor_pool
from prometheus_client import CollectorRegistry, Gauge, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString
from prometheus_client.exposition import choose_encoder
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from .. import metrics as rpc_hook
from ..log import get_logger
from ..metadata.db import MetadataDB
from ..metadata.keys import CONTAINERS, IMAGES, SNAPSHOTS, key_prefix, parse
from ..plugin import PluginSet, PluginType
from ..version import REVISION, VERSION
from ..listen.http import HTTPServer, Request, Response

log = get_logger("metrics")

PATH = "/v1/metrics"
GO_DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, float("inf"))
"""Seconds; Prometheus Go client's ``DefBuckets``, which go-grpc-prometheus uses."""
TASK_STATE_TIMEOUT = 5.0  # seconds a shim may take to answer State during a scrape


def _go_name(code: grpc.StatusCode) -> str:
    special = {grpc.StatusCode.OK: "OK", grpc.StatusCode.CANCELLED: "Canceled"}
    return special.get(code) or "".join(part.capitalize() for part in code.name.split("_"))


GO_CODE_NAMES: dict[grpc.StatusCode, str] = {c: _go_name(c) for c in grpc.StatusCode}
"""gRPC status codes as Go's ``codes.Code.String()`` spells them (the label values
go-grpc-prometheus, hence containerd, uses)."""
_BY_INT = {c.value[0]: name for c, name in GO_CODE_NAMES.items()}


def _code_label(outcome: str, context) -> str:
    code = context.code() if context is not None else None
    if code is None:
        return {"OK": "OK", "CANCELLED": "Canceled"}.get(outcome, "Unknown")
    if isinstance(code, grpc.StatusCode):
        return GO_CODE_NAMES[code]
    return _BY_INT.get(int(code), "Unknown")


@functools.lru_cache(maxsize=1024)
def method_labels(method: str) -> tuple[str, str, str]:
    """``/pkg.Service/Method`` → ``(grpc_type, grpc_service, grpc_method)``; the type comes
    from the method's descriptor (``unary`` when the service is unknown)."""
    service, _, name = method.lstrip("/").partition("/")
    kind = "unary"
    with contextlib.suppress(KeyError):
        desc = descriptor_pool.Default().FindServiceByName(service).FindMethodByName(name)
        if desc is not None:
            kind = {(False, False): "unary", (True, False): "client_stream", (False, True): "server_stream",
                    (True, True): "bidi_stream"}[(desc.client_streaming, desc.server_streaming)]
    return kind, service, name


class GRPCMetrics:
    """The per-RPC families: plain counters kept on the event loop's thread (every call is
    observed there), rendered by prometheus-client at scrape time. :meth:`observe` is the
    hot path: a dict lookup and an increment (plus a bisect with the histogram)."""

    LABELS = ["grpc_type", "grpc_service", "grpc_method", "grpc_code"]

    def __init__(self, histogram: bool) -> None:
        self.histogram = histogram
        self.bounds = GO_DEFAULT_BUCKETS[:-1]
        # (method, code) -> [count, sum of seconds, per-bucket counts (non-cumulative)]
        self._series: dict[tuple[str, str], list] = {}

    def observe(self, method: str, outcome: str, context, started: float) -> None:
        """Count one finished call. ``outcome`` is the interceptor's (``OK``, ``CANCELLED``,
        ``ERROR``…); the status code is read from ``context``; ``started`` is the
        :func:`time.monotonic` of its start."""
        code = _code_label(outcome, context)
        series = self._series.get((method, code))
        if series is None:
            series = self._series[(method, code)] = [0, 0.0, [0] * len(GO_DEFAULT_BUCKETS)]
        series[0] += 1
        if self.histogram:
            seconds = time.monotonic() - started
            series[1] += seconds
            series[2][bisect.bisect_left(self.bounds, seconds)] += 1

    def preregister(self, services: Iterable[str]) -> int:
        """Start every method of ``services`` (full names, e.g.
        ``containerd.services.tasks.v1.Tasks``) at 0 for every status code, as
        go-grpc-prometheus's ``Register(server)`` (``preRegisterMethod``), which containerd
        calls, does for ``grpc_server_handled_total``: a series exists before its first
        call. Services unknown to the descriptor pool are skipped. Returns the number of
        methods. (Pre-started series get no histogram: ours is labelled by code too.)"""
        pool = descriptor_pool.Default()
        methods = 0
        for service in services:
            try:
                desc = pool.FindServiceByName(service)
            except KeyError:
                continue
            for m in desc.methods:
                methods += 1
                for code in GO_CODE_NAMES.values():
                    self._series.setdefault((f"/{service}/{m.name}", code), [0, 0.0, [0] * len(GO_DEFAULT_BUCKETS)])
        return methods

    def describe(self) -> list:
        return []

    def collect(self) -> Iterator:
        handled = CounterMetricFamily("grpc_server_handled", "Total number of RPCs completed on the server, "
                                      "regardless of success or failure.", labels=self.LABELS)
        seconds = HistogramMetricFamily(
            "grpc_server_handling_seconds",
            "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
            labels=self.LABELS,
        )
        for (method, code), (count, total, buckets) in sorted(self._series.items()):
            labels = [*method_labels(method), code]
            handled.add_metric(labels, count)
            if self.histogram and count:
                cumulative, acc = [], 0
                for bound, n in zip(GO_DEFAULT_BUCKETS, buckets):
                    acc += n
                    cumulative.append((floatToGoString(bound), acc))
                seconds.add_metric(labels, cumulative, total)
        yield handled
        if self.histogram:
            yield seconds


# --- gauges computed at scrape time -----------------------------------------------------------


@dataclass
class StoreCounts:
    """What one scrape read from the stores."""

    namespaces: int = 0
    names: list[str] = field(default_factory=list)
    images: dict[str, int] = field(default_factory=dict)
    containers: dict[str, int] = field(default_factory=dict)
    snapshots: dict[tuple[str, str], int] = field(default_factory=dict)
    tasks: dict[tuple[str, str], int] = field(default_factory=dict)
    usage: dict[str, tuple[int, int]] = field(default_factory=dict)  # snapshotter → (bytes, inodes)


def count_objects(db: MetadataDB) -> StoreCounts:
    """Namespaces, and per namespace its images, containers and snapshot references, read in
    one LMDB read transaction (keys only; see :mod:`pycontainerd.metadata.keys`)."""
    counts = StoreCounts()

    def read(txn) -> None:
        names = [k.decode() for k in txn.raw.cursor(db=txn.db("namespaces")).iternext(values=False)]
        counts.names, counts.namespaces = names, len(names)
        with txn.raw.cursor(db=txn.db("objects")) as cur:
            for ns in names:
                for kind, into in ((IMAGES, counts.images), (CONTAINERS, counts.containers)):
                    prefix = key_prefix(ns, kind)
                    n = 0
                    if cur.set_range(prefix):
                        for k in cur.iternext(values=False):
                            if not k.startswith(prefix):
                                break
                            n += 1
                    if n:
                        into[ns] = n
                prefix = key_prefix(ns, SNAPSHOTS)
                if cur.set_range(prefix):
                    for k in cur.iternext(values=False):
                        if not k.startswith(prefix):
                            break
                        parsed = parse(k)
                        if parsed is None:
                            continue
                        snapshotter = parsed.id[0]
                        counts.snapshots[(ns, snapshotter)] = counts.snapshots.get((ns, snapshotter), 0) + 1

    db.view(read)
    return counts


def tree_usage(root: Path) -> tuple[int, int]:
    """``(bytes of blocks, inodes)`` under ``root``, each inode once; entries that vanish
    while walking (a snapshot being removed) are skipped."""
    seen: set[tuple[int, int]] = set()
    size = 0
    stack = [os.fspath(root)]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                size += st.st_blocks * 512
            if entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)
    return size, len(seen)


class StoreCollector:
    """A prometheus-client collector over the daemon's stores: :meth:`refresh` reads them
    (on the loop: metadata, shims; in a thread: disk usage), :meth:`collect` renders what
    the last refresh read."""

    def __init__(self, plugins: PluginSet) -> None:
        self.plugins = plugins
        self.last = StoreCounts()

    async def refresh(self) -> StoreCounts:
        counts = StoreCounts()
        db = self._plugin(PluginType.METADATA)
        if db is not None:
            counts = count_objects(db)
        manager = self._plugin(PluginType.RUNTIME_V2)
        if manager is not None:
            tasks = [t for ns in counts.names for t in manager.list(ns)]
            states = await asyncio.gather(*(self._state(t) for t in tasks))
            for t, state in zip(tasks, states):
                counts.tasks[(t.namespace, state)] = counts.tasks.get((t.namespace, state), 0) + 1
        for name, backend in self.plugins.all(PluginType.SNAPSHOTTER).items():
            root = getattr(backend, "snapshots_dir", None) or getattr(backend, "root", None)
            if root is not None:
                counts.usage[name] = await asyncio.to_thread(tree_usage, Path(root))
        self.last = counts
        return counts

    def _plugin(self, type_: str):
        try:
            return self.plugins.single(type_)
        except Exception:  # not loaded, or failed: its families are left out
            return None

    @staticmethod
    async def _state(task) -> str:
        try:
            state = await asyncio.wait_for(task.state(), TASK_STATE_TIMEOUT)
        except Exception as exc:
            log.debug("task state unavailable for metrics", namespace=task.namespace, id=task.id, error=str(exc))
            return "UNKNOWN"
        return state.status.upper()

    def describe(self) -> list:
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        c = self.last
        yield GaugeMetricFamily("pycontainerd_namespaces", "Namespaces in the metadata store.", value=c.namespaces)
        for name, help_, data in (("pycontainerd_images", "Images, per namespace.", c.images),
                                  ("pycontainerd_containers", "Containers, per namespace.", c.containers)):
            family = GaugeMetricFamily(name, help_, labels=["namespace"])
            for ns, n in sorted(data.items()):
                family.add_metric([ns], n)
            yield family
        family = GaugeMetricFamily("pycontainerd_snapshots", "Snapshots, per namespace and snapshotter.",
                                   labels=["namespace", "snapshotter"])
        for (ns, snapshotter), n in sorted(c.snapshots.items()):
            family.add_metric([ns, snapshotter], n)
        yield family
        family = GaugeMetricFamily("pycontainerd_tasks", "Tasks, per namespace and state.",
                                   labels=["namespace", "state"])
        for (ns, state), n in sorted(c.tasks.items()):
            family.add_metric([ns, state], n)
        yield family
        size = GaugeMetricFamily("pycontainerd_snapshotter_usage_bytes",
                                 "Disk space (allocated blocks) used by a snapshotter's snapshots.",
                                 labels=["snapshotter"])
        inodes = GaugeMetricFamily("pycontainerd_snapshotter_usage_inodes",
                                   "Inodes used by a snapshotter's snapshots.", labels=["snapshotter"])
        for name, (nbytes, ninodes) in sorted(c.usage.items()):
            size.add_metric([name], nbytes)
            inodes.add_metric([name], ninodes)
        yield size
        yield inodes


class MetricsEndpoint:
    """The daemon's registry and its HTTP endpoint; while started, :func:`observe_rpc`
    counts into it."""

    def __init__(self, plugins: PluginSet, grpc_histogram: bool = False, services: Iterable[str] = ()) -> None:
        disable_created_metrics()  # no ``*_created`` twin per series (the daemon's process only)
        self.registry = CollectorRegistry(auto_describe=False)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        Gauge("pycontainerd_build_info", "pycontainerd build information.", ["version", "revision"],
              registry=self.registry).labels(VERSION, REVISION).set(1)
        self.grpc = GRPCMetrics(grpc_histogram)
        self.grpc.preregister(services)  # the gRPC server's services: every method starts at 0
        self.registry.register(self.grpc)
        self.stores = StoreCollector(plugins)
        self.registry.register(self.stores)
        self.server = HTTPServer("metrics", self.handle)
        self._lock = asyncio.Lock()

    async def scrape(self, accept: str = "") -> tuple[bytes, str]:
        """Refresh the store gauges and render every family: ``(body, content type)`` in the
        format ``accept`` asks for (Prometheus text by default, OpenMetrics on request)."""
        async with self._lock:  # concurrent scrapes share nothing half-updated
            await self.stores.refresh()
            encoder, content_type = choose_encoder(accept)
            return encoder(self.registry), content_type

    async def handle(self, request: Request) -> Response:
        if request.path != PATH:
            return Response(404, f"not found: metrics are at {PATH}\n".encode())
        if request.method not in ("GET", "HEAD"):
            return Response(405, b"use GET\n", headers=[("allow", "GET, HEAD")])
        body, content_type = await self.scrape(request.headers.get("accept", ""))
        return Response(body=body, content_type=content_type)

    async def start(self, address: str) -> None:
        """Listen on ``address`` (``host:port``) and start counting RPCs. Raises
        :class:`InvalidArgument` or :class:`FailedPrecondition` (see :class:`HTTPServer`)."""
        await self.server.start(address)
        rpc_hook.set_sink(self.grpc)

    async def close(self) -> None:
        if rpc_hook.sink() is self.grpc:
            rpc_hook.set_sink(None)
        await self.server.close()
