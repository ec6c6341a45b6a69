"""CRI messages from the plugin's own records: ``PodSandboxStatus`` and ``ContainerStatus``
(used by the status calls, the list calls and ``GetContainerEvents``) and the CRI's cpu and
memory figures from a task's cgroup metrics (``io.containerd.cgroups.v1/v2.Metrics``)."""

from __future__ import annotations

from google.protobuf import any_pb2

from ..api.cgroups.v1 import metrics_pb2 as cg1
from ..api.cgroups.v2 import metrics_pb2 as cg2
from ..api.cri.runtime.v1 import api_pb2 as cri
from .state import ContainerState
from .store import Container, Sandbox
from .util import cri_signal_value, process_identity


def sandbox_status_pb(sb: Sandbox) -> cri.PodSandboxStatus:
    st = cri.PodSandboxStatus(id=sb.id, metadata=sb.config.metadata, state=sb.state.to_cri(),
                              created_at=sb.created_at, runtime_handler=sb.runtime_handler)
    st.labels.update(sb.config.labels)
    st.annotations.update(sb.config.annotations)
    if not sb.host_network and sb.network_ready:
        st.network.ip = sb.ip
        for ip in sb.additional_ips:
            st.network.additional_ips.add(ip=ip)
    st.linux.namespaces.options.CopyFrom(sb.namespace_options)
    return st


def container_status_pb(ct: Container) -> cri.ContainerStatus:
    st = cri.ContainerStatus(
        id=ct.id, metadata=ct.config.metadata, state=ct.state.to_cri(), created_at=ct.created_at,
        started_at=ct.started_at, finished_at=ct.finished_at, exit_code=ct.exit_code,
        image=cri.ImageSpec(image=ct.image_repo_tag or ct.image_ref, annotations=ct.config.image.annotations),
        image_ref=ct.image_repo_digest or ct.image_id, image_id=ct.image_id, reason=ct.reason, message=ct.message,
        log_path=ct.log_path, stop_signal=cri_signal_value(ct.stop_signal))
    st.labels.update(ct.config.labels)
    st.annotations.update(ct.config.annotations)
    st.mounts.extend(ct.config.mounts)
    st.resources.linux.CopyFrom(ct.resources)
    if ct.pid and ct.state == ContainerState.RUNNING:
        # the identity the init process runs with now; the last one read stays after it exits
        ct.user = process_identity(ct.pid) or ct.user
    if ct.user:
        st.user.linux.uid = int(ct.user.get("uid", 0))
        st.user.linux.gid = int(ct.user.get("gid", 0))
        st.user.linux.supplemental_groups.extend(int(g) for g in ct.user.get("additional_gids") or [])
    return st


def decode_metrics(data: any_pb2.Any | None) -> dict[str, int]:
    """cpu/memory figures of a task's metrics in the CRI's terms: ``cpu_ns``,
    ``memory_usage``, ``working_set``, ``rss``, ``page_faults``, ``major_page_faults``,
    ``memory_limit``, ``pids`` (absent keys: not known)."""
    if data is None or not data.value:
        return {}
    name = data.type_url.rsplit("/", 1)[-1]
    out: dict[str, int] = {}
    if name == "io.containerd.cgroups.v1.Metrics":
        m = cg1.Metrics.FromString(data.value)
        out["cpu_ns"] = m.cpu.usage.total
        usage = m.memory.usage.usage
        inactive = m.memory.total_inactive_file
        out["memory_usage"] = usage
        out["working_set"] = max(usage - inactive, 0)
        out["rss"] = m.memory.total_rss or m.memory.rss
        out["page_faults"] = m.memory.total_pg_fault or m.memory.pg_fault
        out["major_page_faults"] = m.memory.total_pg_maj_fault or m.memory.pg_maj_fault
        limit = m.memory.usage.limit
        if limit and limit < (1 << 62):
            out["memory_limit"] = limit
        out["pids"] = m.pids.current
    elif name == "io.containerd.cgroups.v2.Metrics":
        m2 = cg2.Metrics.FromString(data.value)
        out["cpu_ns"] = m2.cpu.usage_usec * 1000
        out["memory_usage"] = m2.memory.usage
        out["working_set"] = max(m2.memory.usage - m2.memory.inactive_file, 0)
        out["rss"] = m2.memory.anon
        out["page_faults"] = m2.memory.pgfault
        out["major_page_faults"] = m2.memory.pgmajfault
        if m2.memory.usage_limit and m2.memory.usage_limit < (1 << 62):
            out["memory_limit"] = m2.memory.usage_limit
        out["pids"] = m2.pids.current
    return out
