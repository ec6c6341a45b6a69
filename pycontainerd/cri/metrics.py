"""CRI metrics: ``ListMetricDescriptors`` and ``ListPodSandboxMetrics`` (cAdvisor's names).

Kubelet's CRI metrics source asks the runtime for cAdvisor's ``container_*`` metrics
instead of running cAdvisor. As CRI-O (and containerd 2.x) do, every metric carries the
labels ``id``, ``name`` and ``image`` (the container's id, its CRI name, its image as the
kubelet named it) and some a few more (``cpu``, ``interface``, ``device``…); its value is an
unsigned integer (seconds are whole seconds). A pod's network counters are pod-level metrics
(name ``POD``, no image), read inside its network namespace; everything else belongs to each
running container:

- cpu, memory, OOM kills and block I/O from the task's cgroup figures, which the shim reads
  (cgroup v1 — this host, hybrid — or v2) and the Tasks service hands out;
- processes, threads, file descriptors, sockets and the ``nofile`` soft limit from ``/proc``
  of the container's processes (its pids from the Tasks service); pressure (PSI) from the
  container's cgroup v2 directory (on a hybrid host, the unified hierarchy has it);
- the writable layer's usage from the snapshotter, the filesystem's size and inodes from
  ``statvfs`` of the snapshotter's directory;
- the ``spec`` figures from the container's current CRI resources.

What the daemon's services provide comes through :class:`TaskSource`, a narrow seam
(:class:`~pycontainerd.cri.daemon.Daemon`, the daemon's in-process services).
Hugepages and the memory reservation are not reported (no descriptor).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncio
import contextlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from google.protobuf import any_pb2

from ..api.cgroups.v1 import metrics_pb2 as cg1
from ..api.cgroups.v2 import metrics_pb2 as cg2
from ..api.cri.runtime.v1 import api_pb2 as cri
from ..errdefs import ContainerdError
from ..sysutil.cgroups import unified_dir
from . import netns
from .state import ContainerState, SandboxState
from .store import Container, Sandbox
from .util import now_ns

if TYPE_CHECKING:
    from .service import CRIService

BASE_KEYS = ("id", "name", "image")
COUNTER, GAUGE = cri.COUNTER, cri.GAUGE
NS = 1_000_000_000


@dataclass(frozen=True)
class Descriptor:
    name: str
    help: str
    type: int
    extra_keys: tuple[str, ...] = ()

    def message(self) -> cri.MetricDescriptor:
        return cri.MetricDescriptor(name=self.name, help=self.help, label_keys=[*BASE_KEYS, *self.extra_keys])


def _d(name: str, type_: int, help_: str, *extra: str) -> Descriptor:
    return Descriptor(name, help_, type_, extra)


DESCRIPTORS: tuple[Descriptor, ...] = (
    _d("container_cpu_usage_seconds_total", COUNTER, "CPU time used, in seconds (cpu=total).", "cpu"),
    _d("container_cpu_user_seconds_total", COUNTER, "CPU time used in user mode, in seconds."),
    _d("container_cpu_system_seconds_total", COUNTER, "CPU time used in kernel mode, in seconds."),
    _d("container_cpu_cfs_periods_total", COUNTER, "CFS enforcement periods that have elapsed."),
    _d("container_cpu_cfs_throttled_periods_total", COUNTER, "CFS periods in which the container was throttled."),
    _d("container_cpu_cfs_throttled_seconds_total", COUNTER, "Time the container spent throttled, in seconds."),
    _d("container_memory_usage_bytes", GAUGE, "Memory in use, page cache included, in bytes."),
    _d("container_memory_max_usage_bytes", GAUGE, "Highest memory use recorded, in bytes."),
    _d("container_memory_working_set_bytes", GAUGE, "Memory in use minus inactive file pages, in bytes."),
    _d("container_memory_rss", GAUGE, "Anonymous memory and swap cache, in bytes."),
    _d("container_memory_cache", GAUGE, "Page cache memory, in bytes."),
    _d("container_memory_mapped_file", GAUGE, "Memory-mapped file pages, in bytes."),
    _d("container_memory_swap", GAUGE, "Swap in use, in bytes."),
    _d("container_memory_kernel_usage", GAUGE, "Kernel memory charged to the container, in bytes."),
    _d("container_memory_failcnt", COUNTER, "Times memory use hit the limit."),
    _d("container_memory_failures_total", COUNTER, "Page faults, by type and by scope.", "failure_type", "scope"),
    _d("container_oom_events_total", COUNTER, "Processes of the container killed by the OOM killer."),
    _d("container_blkio_device_usage_total", COUNTER, "Block I/O bytes, by device and operation.",
       "device", "major", "minor", "operation"),
    _d("container_fs_reads_bytes_total", COUNTER, "Bytes read from block devices.", "device"),
    _d("container_fs_reads_total", COUNTER, "Reads completed from block devices.", "device"),
    _d("container_fs_writes_bytes_total", COUNTER, "Bytes written to block devices.", "device"),
    _d("container_fs_writes_total", COUNTER, "Writes completed to block devices.", "device"),
    _d("container_fs_usage_bytes", GAUGE, "Bytes used by the container's writable layer."),
    _d("container_fs_limit_bytes", GAUGE, "Size of the filesystem holding the writable layer, in bytes."),
    _d("container_fs_inodes_total", GAUGE, "Inodes of the filesystem holding the writable layer."),
    _d("container_fs_inodes_free", GAUGE, "Free inodes of the filesystem holding the writable layer."),
    _d("container_processes", GAUGE, "Processes running in the container."),
    _d("container_threads", GAUGE, "Threads running in the container."),
    _d("container_threads_max", GAUGE, "Most tasks the container may run (its pids limit); 0: no limit."),
    _d("container_file_descriptors", GAUGE, "File descriptors open in the container's processes."),
    _d("container_sockets", GAUGE, "Sockets open in the container's processes."),
    _d("container_ulimits_soft", GAUGE, "Soft resource limits of the container's first process.", "ulimit"),
    _d("container_spec_cpu_period", GAUGE, "CFS period the container was given, in microseconds."),
    _d("container_spec_cpu_quota", GAUGE, "CFS quota the container was given, in microseconds."),
    _d("container_spec_cpu_shares", GAUGE, "CPU shares the container was given."),
    _d("container_spec_memory_limit_bytes", GAUGE, "Memory limit the container was given, in bytes."),
    _d("container_spec_memory_swap_limit_bytes", GAUGE, "Memory plus swap limit the container was given, in bytes."),
    _d("container_pressure_cpu_waiting_seconds_total", COUNTER, "Time some tasks waited for CPU, in seconds."),
    _d("container_pressure_cpu_stalled_seconds_total", COUNTER, "Time all tasks waited for CPU, in seconds."),
    _d("container_pressure_memory_waiting_seconds_total", COUNTER, "Time some tasks waited for memory, in seconds."),
    _d("container_pressure_memory_stalled_seconds_total", COUNTER, "Time all tasks waited for memory, in seconds."),
    _d("container_pressure_io_waiting_seconds_total", COUNTER, "Time some tasks waited for I/O, in seconds."),
    _d("container_pressure_io_stalled_seconds_total", COUNTER, "Time all tasks waited for I/O, in seconds."),
    _d("container_start_time_seconds", GAUGE, "When the container started, in seconds since the epoch."),
    _d("container_last_seen", GAUGE, "When these figures were read, in seconds since the epoch."),
    _d("container_network_receive_bytes_total", COUNTER, "Bytes received.", "interface"),
    _d("container_network_receive_packets_total", COUNTER, "Packets received.", "interface"),
    _d("container_network_receive_packets_dropped_total", COUNTER, "Packets dropped on receipt.", "interface"),
    _d("container_network_receive_errors_total", COUNTER, "Errors while receiving.", "interface"),
    _d("container_network_transmit_bytes_total", COUNTER, "Bytes sent.", "interface"),
    _d("container_network_transmit_packets_total", COUNTER, "Packets sent.", "interface"),
    _d("container_network_transmit_packets_dropped_total", COUNTER, "Packets dropped on sending.", "interface"),
    _d("container_network_transmit_errors_total", COUNTER, "Errors while sending.", "interface"),
)
BY_NAME = {d.name: d for d in DESCRIPTORS}


def descriptors() -> list[cri.MetricDescriptor]:
    return [d.message() for d in DESCRIPTORS]


class TaskSource(Protocol):
    """What the metrics need of the daemon's services (the seam; :class:`Backend` fits)."""

    async def metrics(self, ids: Sequence[str]) -> dict[str, any_pb2.Any]:
        """cgroup metrics (``io.containerd.cgroups.v1/v2.Metrics``) of the tasks ``ids``."""

    async def pids(self, cid: str) -> list[int]:
        """The pids of the task's processes."""

    async def snapshot_usage(self, key: str) -> tuple[int, int]:
        """``(bytes, inodes)`` used by the snapshot ``key`` (the writable layer)."""


# --- the figures ----------------------------------------------------------------------------


@dataclass
class Cgroup:
    """A task's cgroup figures, the same names for v1 and v2 (nanoseconds, bytes, counts)."""

    cpu_ns: int = 0
    user_ns: int = 0
    system_ns: int = 0
    periods: int = 0
    throttled_periods: int = 0
    throttled_ns: int = 0
    usage: int = 0
    max_usage: int = 0
    working_set: int = 0
    rss: int = 0
    cache: int = 0
    mapped_file: int = 0
    swap: int = 0
    kernel: int = 0
    failcnt: int = 0
    faults: dict[tuple[str, str], int] = field(default_factory=dict)  # (type, scope) -> count
    oom_kills: int = 0
    pids_limit: int = 0
    io: dict[tuple[int, int], dict[str, int]] = field(default_factory=dict)  # (major, minor) -> rbytes...

    @classmethod
    def from_any(cls, data: any_pb2.Any | None) -> Cgroup | None:
        if data is None or not data.value:
            return None
        name = data.type_url.rsplit("/", 1)[-1]
        if name == "io.containerd.cgroups.v1.Metrics":
            return cls._v1(cg1.Metrics.FromString(data.value))
        if name == "io.containerd.cgroups.v2.Metrics":
            return cls._v2(cg2.Metrics.FromString(data.value))
        return None

    @classmethod
    def _v1(cls, m: cg1.Metrics) -> Cgroup:
        mem = m.memory
        usage = mem.usage.usage
        io: dict[tuple[int, int], dict[str, int]] = {}
        for entries, unit in ((m.blkio.io_service_bytes_recursive, "bytes"), (m.blkio.io_serviced_recursive, "ios")):
            for e in entries:
                op = {"read": "r", "write": "w"}.get(e.op.lower())
                if op:
                    dev = io.setdefault((e.major, e.minor), {})
                    dev[op + unit] = dev.get(op + unit, 0) + e.value
        return cls(
            cpu_ns=m.cpu.usage.total, user_ns=m.cpu.usage.user, system_ns=m.cpu.usage.kernel,
            periods=m.cpu.throttling.periods, throttled_periods=m.cpu.throttling.throttled_periods,
            throttled_ns=m.cpu.throttling.throttled_time, usage=usage, max_usage=mem.usage.max,
            working_set=max(usage - mem.total_inactive_file, 0), rss=mem.total_rss, cache=mem.total_cache,
            mapped_file=mem.total_mapped_file, swap=max(mem.swap.usage - usage, 0) if mem.swap.usage else 0,
            kernel=mem.kernel.usage, failcnt=mem.usage.failcnt,
            faults={("pgfault", "container"): mem.pg_fault, ("pgmajfault", "container"): mem.pg_maj_fault,
                    ("pgfault", "hierarchy"): mem.total_pg_fault,
                    ("pgmajfault", "hierarchy"): mem.total_pg_maj_fault},
            oom_kills=m.memory_oom_control.oom_kill, pids_limit=m.pids.limit, io=io)

    @classmethod
    def _v2(cls, m: cg2.Metrics) -> Cgroup:
        mem = m.memory
        io = {(e.major, e.minor): {"rbytes": e.rbytes, "wbytes": e.wbytes, "rios": e.rios, "wios": e.wios}
              for e in m.io.usage}
        faults = {}
        for scope in ("container", "hierarchy"):  # v2's memory.stat is hierarchical
            faults[("pgfault", scope)] = mem.pgfault
            faults[("pgmajfault", scope)] = mem.pgmajfault
        return cls(
            cpu_ns=m.cpu.usage_usec * 1000, user_ns=m.cpu.user_usec * 1000, system_ns=m.cpu.system_usec * 1000,
            periods=m.cpu.nr_periods, throttled_periods=m.cpu.nr_throttled, throttled_ns=m.cpu.throttled_usec * 1000,
            usage=mem.usage, max_usage=mem.usage, working_set=max(mem.usage - mem.inactive_file, 0), rss=mem.anon,
            cache=mem.file, mapped_file=mem.file_mapped, swap=mem.swap_usage,
            kernel=mem.kernel_stack + mem.slab + mem.sock, failcnt=m.memory_events.max, faults=faults,
            oom_kills=m.memory_events.oom_kill, pids_limit=m.pids.limit, io=io)


@dataclass
class Processes:
    """What ``/proc`` tells about a container's processes and its filesystem."""

    count: int = 0
    threads: int = 0
    fds: int = 0
    sockets: int = 0
    nofile_soft: int | None = None  # None: unlimited or unknown
    fs_size: int = 0
    fs_inodes: int = 0
    fs_inodes_free: int = 0
    pressure: dict[str, tuple[int, int]] = field(default_factory=dict)  # cpu/memory/io -> (some, full) µs


def read_processes(pids: Iterable[int], init_pid: int, fs_path: str) -> Processes:
    """Blocking (``/proc`` and ``statvfs``): run it off the loop. Processes that exit
    meanwhile are left out."""
    out = Processes()
    for pid in pids:
        try:
            names = os.listdir(f"/proc/{pid}/fd")
            with open(f"/proc/{pid}/status") as f:
                threads = next((int(line.split()[1]) for line in f if line.startswith("Threads:")), 1)
        except (OSError, ValueError):
            continue
        out.count += 1
        out.threads += threads
        out.fds += len(names)
        for name in names:
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{name}").startswith("socket:"):
                    out.sockets += 1
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open(f"/proc/{init_pid}/limits") as f:
            for line in f:
                if line.startswith("Max open files"):
                    soft = line[len("Max open files"):].split()[0]
                    out.nofile_soft = None if soft == "unlimited" else int(soft)
    out.pressure = read_pressure(unified_dir(init_pid)) if init_pid else {}
    if fs_path:
        with contextlib.suppress(OSError):
            st = os.statvfs(fs_path)
            out.fs_size, out.fs_inodes, out.fs_inodes_free = st.f_blocks * st.f_frsize, st.f_files, st.f_ffree
    return out


def read_pressure(cgroup_dir: str) -> dict[str, tuple[int, int]]:
    """PSI totals of a cgroup v2 directory: ``{resource: (some µs, full µs)}`` (those it has)."""
    out: dict[str, tuple[int, int]] = {}
    if not cgroup_dir:
        return out
    for res in ("cpu", "memory", "io"):
        totals = {}
        with contextlib.suppress(OSError, ValueError):
            with open(os.path.join(cgroup_dir, f"{res}.pressure")) as f:
                for line in f:
                    kind, _, rest = line.partition(" ")
                    totals[kind] = int(rest.rsplit("total=", 1)[1])
        if "some" in totals:
            out[res] = (totals["some"], totals.get("full", 0))
    return out


def device_name(major: int, minor: int) -> str:
    """``/dev/<name>`` of a block device (from sysfs), else ``major:minor``."""
    with contextlib.suppress(OSError):
        with open(f"/sys/dev/block/{major}:{minor}/uevent") as f:
            for line in f:
                if line.startswith("DEVNAME="):
                    return "/dev/" + line.strip().split("=", 1)[1]
    return f"{major}:{minor}"


# --- the metrics ----------------------------------------------------------------------------


class _Builder:
    """Metrics for one label set (``id``, ``name``, ``image``) at one time."""

    def __init__(self, base: Sequence[str], ts: int) -> None:
        self.base = list(base)
        self.ts = ts
        self.out: list[cri.Metric] = []

    def add(self, name: str, value: int, *extra: str) -> None:
        d = BY_NAME[name]
        assert len(extra) == len(d.extra_keys), name
        self.out.append(cri.Metric(name=name, timestamp=self.ts, metric_type=d.type,
                                   label_values=[*self.base, *extra], value=cri.UInt64Value(value=max(int(value), 0))))


def container_metrics(ct: Container, cg: Cgroup | None, procs: Processes, fs_used: int | None,
                      ts: int) -> list[cri.Metric]:
    b = _Builder((ct.id, ct.config.metadata.name, ct.image_ref), ts)
    if cg is not None:
        b.add("container_cpu_usage_seconds_total", cg.cpu_ns // NS, "total")
        b.add("container_cpu_user_seconds_total", cg.user_ns // NS)
        b.add("container_cpu_system_seconds_total", cg.system_ns // NS)
        b.add("container_cpu_cfs_periods_total", cg.periods)
        b.add("container_cpu_cfs_throttled_periods_total", cg.throttled_periods)
        b.add("container_cpu_cfs_throttled_seconds_total", cg.throttled_ns // NS)
        for name, value in (("usage_bytes", cg.usage), ("max_usage_bytes", cg.max_usage),
                            ("working_set_bytes", cg.working_set), ("rss", cg.rss), ("cache", cg.cache),
                            ("mapped_file", cg.mapped_file), ("swap", cg.swap), ("kernel_usage", cg.kernel),
                            ("failcnt", cg.failcnt)):
            b.add(f"container_memory_{name}", value)
        for (kind, scope), value in sorted(cg.faults.items()):
            b.add("container_memory_failures_total", value, kind, scope)
        b.add("container_oom_events_total", cg.oom_kills)
        b.add("container_threads_max", cg.pids_limit)
        for (major, minor), io in sorted(cg.io.items()):
            dev = device_name(major, minor)
            for op, key in (("Read", "rbytes"), ("Write", "wbytes")):
                b.add("container_blkio_device_usage_total", io.get(key, 0), dev, str(major), str(minor), op)
            b.add("container_fs_reads_bytes_total", io.get("rbytes", 0), dev)
            b.add("container_fs_reads_total", io.get("rios", 0), dev)
            b.add("container_fs_writes_bytes_total", io.get("wbytes", 0), dev)
            b.add("container_fs_writes_total", io.get("wios", 0), dev)
    b.add("container_processes", procs.count)
    b.add("container_threads", procs.threads)
    b.add("container_file_descriptors", procs.fds)
    b.add("container_sockets", procs.sockets)
    if procs.nofile_soft is not None:
        b.add("container_ulimits_soft", procs.nofile_soft, "max_open_files")
    if fs_used is not None:
        b.add("container_fs_usage_bytes", fs_used)
    if procs.fs_size:
        b.add("container_fs_limit_bytes", procs.fs_size)
        b.add("container_fs_inodes_total", procs.fs_inodes)
        b.add("container_fs_inodes_free", procs.fs_inodes_free)
    for res, (some, full) in sorted(procs.pressure.items()):
        b.add(f"container_pressure_{res}_waiting_seconds_total", some // 1_000_000)
        b.add(f"container_pressure_{res}_stalled_seconds_total", full // 1_000_000)
    r = ct.resources
    b.add("container_spec_cpu_period", r.cpu_period)
    b.add("container_spec_cpu_quota", r.cpu_quota)
    b.add("container_spec_cpu_shares", r.cpu_shares)
    b.add("container_spec_memory_limit_bytes", r.memory_limit_in_bytes)
    b.add("container_spec_memory_swap_limit_bytes", r.memory_swap_limit_in_bytes)
    b.add("container_start_time_seconds", ct.started_at // NS)
    b.add("container_last_seen", ts // NS)
    return b.out


def network_metrics(sb: Sandbox, interfaces: Iterable[netns.Interface], ts: int) -> list[cri.Metric]:
    """The pod's counters (every interface but ``lo``), labelled as the pod (name ``POD``)."""
    b = _Builder((sb.id, "POD", ""), ts)
    for i in interfaces:
        if i.name == "lo":
            continue
        for name, value in (("receive_bytes", i.rx_bytes), ("receive_packets", i.rx_packets),
                            ("receive_packets_dropped", i.rx_dropped), ("receive_errors", i.rx_errors),
                            ("transmit_bytes", i.tx_bytes), ("transmit_packets", i.tx_packets),
                            ("transmit_packets_dropped", i.tx_dropped), ("transmit_errors", i.tx_errors)):
            b.add(f"container_network_{name}_total", value, i.name)
    return b.out


async def sandbox_metrics(svc: CRIService, source: TaskSource, sb: Sandbox) -> cri.PodSandboxMetrics:
    """The metrics of one pod: its network, and each of its running containers."""
    out = cri.PodSandboxMetrics(pod_sandbox_id=sb.id)
    ns_path = sb.netns_path or (f"/proc/{sb.pid}/ns/net" if sb.pid else "")
    if ns_path and (sb.network_ready or not sb.netns_path):
        with contextlib.suppress(Exception):  # the namespace may be going away: no counters then
            out.metrics.extend(network_metrics(sb, await netns.interfaces_async(ns_path), now_ns()))
    cts = svc.containers.list(lambda x: x.sandbox_id == sb.id and x.state is ContainerState.RUNNING)
    figures: dict[str, any_pb2.Any] = {}
    if cts:
        with contextlib.suppress(ContainerdError):
            figures = await source.metrics([ct.id for ct in cts])
    for ct in cts:
        pids: list[int] = []
        with contextlib.suppress(ContainerdError):
            pids = await source.pids(ct.id)
        fs_used = None
        with contextlib.suppress(ContainerdError):
            fs_used = (await source.snapshot_usage(ct.id))[0]
        metrics = await asyncio.to_thread(_measure, ct, figures.get(ct.id), pids, fs_used, svc.snapshotter_root)
        out.container_metrics.append(cri.ContainerMetrics(container_id=ct.id, metrics=metrics))
    return out


def _measure(ct: Container, figures: any_pb2.Any | None, pids: list[int], fs_used: int | None,
             fs_path: str) -> list[cri.Metric]:
    """Read ``/proc``, ``statvfs`` and sysfs (blocking: on a worker thread) and build the metrics."""
    procs = read_processes(pids, ct.pid, fs_path)
    return container_metrics(ct, Cgroup.from_any(figures), procs, fs_used, now_ns())


async def all_sandbox_metrics(svc: CRIService, source: TaskSource) -> list[cri.PodSandboxMetrics]:
    return [await sandbox_metrics(svc, source, sb) for sb in svc.sandboxes.list(lambda s: s.state is SandboxState.READY)]
