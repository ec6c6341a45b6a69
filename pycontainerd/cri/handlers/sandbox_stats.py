"""``PodSandboxStats``, ``ListPodSandboxStats`` (and ``StreamPodSandboxStats``): the pod's
cpu, memory and process count (its pause task and containers together), its network
counters (read inside its network namespace: ``eth0`` is the default interface) and each
container's stats. ``ListMetricDescriptors`` / ``ListPodSandboxMetrics`` (and the stream):
cAdvisor's ``container_*`` metrics, see :mod:`pycontainerd.cri.metrics`."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from ...api.cri.runtime.v1 import api_pb2 as cri
from ...errdefs import ContainerdError
from .. import metrics, netns
from ..filters import chunks, filter_sandbox_stats
from ..convert import decode_metrics
from ..service import CRIService
from ..state import ContainerState, SandboxState
from ..store import Sandbox
from ..util import now_ns
from .container_stats import U, cpu_usage, memory_usage, stats_for


def _iface(i: netns.Interface) -> cri.NetworkInterfaceUsage:
    return cri.NetworkInterfaceUsage(name=i.name, rx_bytes=U(value=i.rx_bytes), rx_errors=U(value=i.rx_errors),
                                     tx_bytes=U(value=i.tx_bytes), tx_errors=U(value=i.tx_errors))


async def sandbox_stats(svc: CRIService, sb: Sandbox) -> cri.PodSandboxStats:
    ts = now_ns()
    out = cri.PodSandboxStats(attributes=cri.PodSandboxAttributes(id=sb.id, metadata=sb.config.metadata))
    out.attributes.labels.update(sb.config.labels)
    out.attributes.annotations.update(sb.config.annotations)
    cts = svc.containers.list(lambda x: x.sandbox_id == sb.id and x.state is ContainerState.RUNNING)
    ids = ([sb.id] if sb.state is SandboxState.READY else []) + [ct.id for ct in cts]
    metrics = {}
    if ids:
        with contextlib.suppress(ContainerdError):
            metrics = await svc.daemon.metrics(ids)
    total: dict[str, int] = {}
    for data in metrics.values():
        for k, v in decode_metrics(data).items():
            if k != "memory_limit":
                total[k] = total.get(k, 0) + v
    linux = out.linux
    if total:
        linux.cpu.CopyFrom(cpu_usage(svc, f"pod:{sb.id}", ts, total.get("cpu_ns", 0)))
        linux.memory.CopyFrom(memory_usage(ts, total))
        linux.process.CopyFrom(cri.ProcessUsage(timestamp=ts, process_count=U(value=total.get("pids", 0))))
    if sb.netns_path and sb.network_ready:
        with contextlib.suppress(Exception):
            ifaces = await netns.interfaces_async(sb.netns_path)
            linux.network.timestamp = ts
            for i in ifaces:
                if i.name == "eth0":
                    linux.network.default_interface.CopyFrom(_iface(i))
                elif i.name != "lo":
                    linux.network.interfaces.append(_iface(i))
    linux.containers.extend(await stats_for(svc, cts))
    return out


async def pod_sandbox_stats(svc: CRIService, req: cri.PodSandboxStatsRequest) -> cri.PodSandboxStatsResponse:
    return cri.PodSandboxStatsResponse(stats=await sandbox_stats(svc, svc.sandboxes.get(req.pod_sandbox_id)))


async def _all(svc: CRIService, f: cri.PodSandboxStatsFilter | None) -> list[cri.PodSandboxStats]:
    sbs = filter_sandbox_stats(svc.sandboxes.list(lambda s: s.state is SandboxState.READY), f, svc.sandboxes.resolve)
    return [await sandbox_stats(svc, sb) for sb in sbs]


async def list_pod_sandbox_stats(svc: CRIService, req: cri.ListPodSandboxStatsRequest) -> cri.ListPodSandboxStatsResponse:
    return cri.ListPodSandboxStatsResponse(stats=await _all(svc, req.filter if req.HasField("filter") else None))


async def stream_pod_sandbox_stats(svc: CRIService, req: cri.StreamPodSandboxStatsRequest
                                   ) -> AsyncIterator[cri.StreamPodSandboxStatsResponse]:
    for chunk in chunks(await _all(svc, req.filter if req.HasField("filter") else None)):
        yield cri.StreamPodSandboxStatsResponse(pod_sandbox_stats=chunk)


async def list_metric_descriptors(svc: CRIService, req: cri.ListMetricDescriptorsRequest) -> cri.ListMetricDescriptorsResponse:
    return cri.ListMetricDescriptorsResponse(descriptors=metrics.descriptors())


async def list_pod_sandbox_metrics(svc: CRIService, req: cri.ListPodSandboxMetricsRequest) -> cri.ListPodSandboxMetricsResponse:
    return cri.ListPodSandboxMetricsResponse(pod_metrics=await metrics.all_sandbox_metrics(svc, svc.daemon))


async def stream_pod_sandbox_metrics(svc: CRIService, req) -> AsyncIterator[cri.StreamPodSandboxMetricsResponse]:
    for chunk in chunks(await metrics.all_sandbox_metrics(svc, svc.daemon)):
        yield cri.StreamPodSandboxMetricsResponse(pod_sandbox_metrics=chunk)
