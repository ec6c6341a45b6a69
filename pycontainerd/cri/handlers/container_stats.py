"""``ContainerStats``, ``ListContainerStats`` (and ``StreamContainerStats``): cpu and memory
from the task's cgroup metrics (cgroup v1 or v2, through the Tasks service) and the
writable layer's usage from the snapshotter. Containers that do not run have no cpu or
memory figures; the list holds running containers only (as containerd's)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

from ...api.cri.runtime.v1 import api_pb2 as cri
from ...errdefs import ContainerdError
from ..filters import chunks, filter_container_stats
from ..convert import decode_metrics
from ..service import CRIService
from ..state import ContainerState
from ..store import Container
from ..util import now_ns

U = cri.UInt64Value


def cpu_usage(svc: CRIService, key: str, ts: int, cpu_ns: int) -> cri.CpuUsage:
    """Cumulative usage and, from the previous sample of ``key``, the rate in nano-cores."""
    out = cri.CpuUsage(timestamp=ts, usage_core_nano_seconds=U(value=cpu_ns))
    samples = svc.cpu_samples
    prev = samples.get(key)
    if prev is not None and ts > prev[0] and cpu_ns >= prev[1]:
        out.usage_nano_cores.value = int((cpu_ns - prev[1]) * 1_000_000_000 / (ts - prev[0]))
    samples[key] = (ts, cpu_ns)
    return out


def memory_usage(ts: int, m: dict[str, int]) -> cri.MemoryUsage:
    out = cri.MemoryUsage(timestamp=ts, working_set_bytes=U(value=m.get("working_set", 0)),
                          usage_bytes=U(value=m.get("memory_usage", 0)), rss_bytes=U(value=m.get("rss", 0)),
                          page_faults=U(value=m.get("page_faults", 0)),
                          major_page_faults=U(value=m.get("major_page_faults", 0)))
    if "memory_limit" in m:
        out.available_bytes.value = max(m["memory_limit"] - m.get("working_set", 0), 0)
    return out


async def stats_for(svc: CRIService, cts: Sequence[Container]) -> list[cri.ContainerStats]:
    running = [ct.id for ct in cts if ct.state is ContainerState.RUNNING]
    metrics = {}
    if running:
        with contextlib.suppress(ContainerdError):
            metrics = await svc.daemon.metrics(running)
    out = []
    for ct in cts:
        ts = now_ns()
        s = cri.ContainerStats(attributes=cri.ContainerAttributes(id=ct.id, metadata=ct.config.metadata))
        s.attributes.labels.update(ct.config.labels)
        s.attributes.annotations.update(ct.config.annotations)
        m = decode_metrics(metrics.get(ct.id))
        if m:
            s.cpu.CopyFrom(cpu_usage(svc, ct.id, ts, m.get("cpu_ns", 0)))
            s.memory.CopyFrom(memory_usage(ts, m))
        with contextlib.suppress(ContainerdError):
            used, inodes = await svc.daemon.snapshot_usage(ct.id)
            s.writable_layer.CopyFrom(cri.FilesystemUsage(
                timestamp=ts, fs_id=cri.FilesystemIdentifier(mountpoint=svc.snapshotter_root),
                used_bytes=U(value=used), inodes_used=U(value=inodes)))
        out.append(s)
    return out


async def container_stats(svc: CRIService, req: cri.ContainerStatsRequest) -> cri.ContainerStatsResponse:
    ct = svc.containers.get(req.container_id)
    return cri.ContainerStatsResponse(stats=(await stats_for(svc, [ct]))[0])


def _selected(svc: CRIService, f: cri.ContainerStatsFilter | None) -> list[Container]:
    items = filter_container_stats(svc.containers.list(), f, svc.containers.resolve, svc.sandboxes.resolve)
    return [ct for ct in items if ct.state is ContainerState.RUNNING]


async def list_container_stats(svc: CRIService, req: cri.ListContainerStatsRequest) -> cri.ListContainerStatsResponse:
    f = req.filter if req.HasField("filter") else None
    return cri.ListContainerStatsResponse(stats=await stats_for(svc, _selected(svc, f)))


async def stream_container_stats(svc: CRIService, req: cri.StreamContainerStatsRequest
                                 ) -> AsyncIterator[cri.StreamContainerStatsResponse]:
    f = req.filter if req.HasField("filter") else None
    for chunk in chunks(await stats_for(svc, _selected(svc, f))):
        yield cri.StreamContainerStatsResponse(container_stats=chunk)
