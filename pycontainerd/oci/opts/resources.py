"""Resource options: memory, swap, CPU quota/shares/cpuset, pids, the cgroup path."""

from __future__ import annotations

import posixpath
import re

from ...errdefs import InvalidArgument
from ..spec import Spec
from .base import DEFAULT_CPU_PERIOD, SpecContext, SpecOpt, _Flag, _cpu, _int, _linux, _resources, _set


def with_memory_limit(limit: int) -> SpecOpt:
    """Memory limit in bytes."""
    value = _int(limit, "memory limit", 1, 2**63 - 1)

    def _with_memory_limit(spec: Spec, ctx: SpecContext) -> None:
        _resources(spec).setdefault("memory", {})["limit"] = value

    return _with_memory_limit


def with_memory_swap(swap: int) -> SpecOpt:
    """Memory + swap limit in bytes (-1: unlimited)."""
    value = _int(swap, "memory swap", -1, 2**63 - 1)

    def _with_memory_swap(spec: Spec, ctx: SpecContext) -> None:
        _resources(spec).setdefault("memory", {})["swap"] = value

    return _with_memory_swap


def with_cpu_cfs(quota: int, period: int) -> SpecOpt:
    """CFS quota and period in microseconds (``WithCPUCFS``)."""
    q = _int(quota, "cpu quota", -1, 2**63 - 1)
    p = _int(period, "cpu period", 0, 2**64 - 1)

    def _with_cpu_cfs(spec: Spec, ctx: SpecContext) -> None:
        cpu = _cpu(spec)
        cpu["quota"], cpu["period"] = q, p

    return _with_cpu_cfs


def with_cpus(cpus: float) -> SpecOpt:
    """Limit to ``cpus`` CPUs: period 100000 µs, quota ``int(cpus * 100000)``, as ``ctr run --cpus``.

    (containerd's own ``WithCPUs`` sets the cpuset; that is :func:`with_cpuset_cpus` here.)
    """
    if isinstance(cpus, bool) or not isinstance(cpus, (int, float)) or not cpus > 0 or cpus == float("inf"):
        raise InvalidArgument(f"cpus must be a positive number, got {cpus!r}")
    return with_cpu_cfs(int(cpus * float(DEFAULT_CPU_PERIOD)), DEFAULT_CPU_PERIOD)


def with_cpuset_cpus(cpus: str) -> SpecOpt:
    """CPUs the container may run on, e.g. ``"0-2,4"`` (containerd's ``WithCPUs``)."""
    if not isinstance(cpus, str) or not re.fullmatch(r"[0-9,\-]*", cpus):
        raise InvalidArgument(f"invalid cpuset {cpus!r}")

    def _with_cpuset_cpus(spec: Spec, ctx: SpecContext) -> None:
        _set(_cpu(spec), "cpus", cpus)

    return _with_cpuset_cpus


def with_cpuset_mems(mems: str) -> SpecOpt:
    if not isinstance(mems, str) or not re.fullmatch(r"[0-9,\-]*", mems):
        raise InvalidArgument(f"invalid cpuset mems {mems!r}")

    def _with_cpuset_mems(spec: Spec, ctx: SpecContext) -> None:
        _set(_cpu(spec), "mems", mems)

    return _with_cpuset_mems


def with_cpu_shares(shares: int) -> SpecOpt:
    value = _int(shares, "cpu shares", 0, 2**64 - 1)

    def _with_cpu_shares(spec: Spec, ctx: SpecContext) -> None:
        _cpu(spec)["shares"] = value

    return _with_cpu_shares


def with_pids_limit(limit: int) -> SpecOpt:
    """Maximum number of tasks in the container's cgroup (0 or -1: unlimited)."""
    value = _int(limit, "pids limit", -1, 2**63 - 1)

    def _with_pids_limit(spec: Spec, ctx: SpecContext) -> None:
        _resources(spec)["pids"] = {"limit": value}

    return _with_pids_limit


def with_cgroup(path: str) -> SpecOpt:
    """Set ``linux.cgroupsPath`` (``""`` removes it: the runtime picks one)."""
    if not isinstance(path, str):
        raise InvalidArgument(f"cgroup path must be a string, not {path!r}")

    def _with_cgroup(spec: Spec, ctx: SpecContext) -> None:
        _set(_linux(spec), "cgroupsPath", path)

    return _with_cgroup


@_Flag
def with_namespaced_cgroup(spec: Spec, ctx: SpecContext) -> None:
    """``cgroupsPath`` = ``/<namespace>/<id>`` (``WithNamespacedCgroup``)."""
    _linux(spec)["cgroupsPath"] = posixpath.join("/", ctx.namespace, ctx.id)
