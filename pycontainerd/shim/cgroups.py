"""A container's cgroup, read for ``Stats`` and watched for OOM kills; cgroup v1 and v2.

The cgroup is found from the init pid (``/proc/<pid>/cgroup``) and the cgroup mounts
(``/proc/self/mountinfo``). On a v1 or hybrid host the v1 controllers are read and the
result is an ``io.containerd.cgroups.v1.Metrics``; on a unified host an
``io.containerd.cgroups.v2.Metrics`` — the same messages and type URLs containerd's runc
shim returns, so ``ctr task metrics`` prints them.

OOM: v1 registers an eventfd on ``memory.oom_control`` through ``cgroup.event_control``;
v2 watches ``memory.events`` with inotify and reports an increase of ``oom_kill``. Both
fds sit on the shim's reactor.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from ..ttrpc.reactor import Reactor
from ..sysutil import files, libc
from ..sysutil.cgroups import join as _join
from ..sysutil.cgroups import mounts as _mounts
from ..sysutil.cgroups import read as _read
from . import proto as pb


def _int(path: str) -> int:
    s = _read(path).strip()
    if not s or s == "max":
        return 0
    try:
        return int(s.split()[0])
    except ValueError:
        return 0


def _kv(path: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in _read(path).splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                pass
    return out


class Cgroup:
    """The cgroup of one pid: ``version`` 1 with ``paths[controller]``, or 2 with ``path``."""

    def __init__(self, version: int, paths: dict[str, str] | None = None, path: str = "") -> None:
        self.version = version
        self.paths = paths or {}
        self.path = path

    @classmethod
    def for_pid(cls, pid: int) -> Cgroup | None:
        entries = [line.split(":", 2) for line in _read(f"/proc/{pid}/cgroup").splitlines() if line.count(":") >= 2]
        if not entries:
            return None
        v1_mounts, v2_mount = _mounts()
        v1_paths: dict[str, str] = {}
        unified = ""
        for _hid, ctrls, path in entries:
            if ctrls == "":
                unified = path
                continue
            for c in ctrls.split(","):
                name = c[5:] if c.startswith("name=") else c
                if name in v1_mounts:
                    v1_paths[name] = _join(v1_mounts[name], path)
        if "memory" in v1_paths or "cpuacct" in v1_paths or "pids" in v1_paths:
            return cls(1, paths=v1_paths)
        if v2_mount is not None:
            return cls(2, path=_join(v2_mount, unified or "/"))
        return None

    def exists(self) -> bool:
        if self.version == 2:
            return os.path.isdir(self.path)
        p = self.paths.get("memory") or next(iter(self.paths.values()), "")
        return bool(p) and os.path.isdir(p)

    # --- stats --------------------------------------------------------------------------------

    def stats(self) -> pb.Any:
        """The metrics as an ``Any`` (``io.containerd.cgroups.v1.Metrics`` or ``…v2.Metrics``)."""
        return pb.pack(self._v1() if self.version == 1 else self._v2())

    def _v1(self) -> pb.V1Metrics:
        m = pb.V1Metrics()
        p = self.paths
        if "pids" in p:
            m.pids = pb.V1PidsStat(current=_int(f"{p['pids']}/pids.current"), limit=_int(f"{p['pids']}/pids.max"))
        if "cpuacct" in p or "cpu" in p:
            m.cpu = pb.V1CPUStat()
        if "cpuacct" in p:
            d = p["cpuacct"]
            usage = m.cpu.usage = pb.V1CPUUsage()
            usage.total = _int(f"{d}/cpuacct.usage")
            usage.per_cpu = [int(x) for x in _read(f"{d}/cpuacct.usage_percpu").split()]
            st = _kv(f"{d}/cpuacct.stat")
            tick = 1_000_000_000 // (os.sysconf("SC_CLK_TCK") or 100)
            usage.user = st.get("user", 0) * tick
            usage.kernel = st.get("system", 0) * tick
        if "cpu" in p:
            st = _kv(f"{p['cpu']}/cpu.stat")
            m.cpu.throttling = pb.V1Throttle(periods=st.get("nr_periods", 0),
                                             throttled_periods=st.get("nr_throttled", 0),
                                             throttled_time=st.get("throttled_time", 0))
        if "memory" in p:
            d = p["memory"]
            st = _kv(f"{d}/memory.stat")
            mem = m.memory = pb.V1MemoryStat(**{field: st.get(key, 0) for key, field in _V1_MEMORY_STAT.items()})
            for name, prefix in (("usage", "memory"), ("swap", "memory.memsw"), ("kernel", "memory.kmem"),
                                 ("kernel_tcp", "memory.kmem.tcp")):
                setattr(mem, name, pb.V1MemoryEntry(usage=_int(f"{d}/{prefix}.usage_in_bytes"),
                                                    limit=_int(f"{d}/{prefix}.limit_in_bytes"),
                                                    max=_int(f"{d}/{prefix}.max_usage_in_bytes"),
                                                    failcnt=_int(f"{d}/{prefix}.failcnt")))
            oc = _kv(f"{d}/memory.oom_control")
            m.memory_oom_control = pb.V1MemoryOomControl(oom_kill_disable=oc.get("oom_kill_disable", 0),
                                                         under_oom=oc.get("under_oom", 0),
                                                         oom_kill=oc.get("oom_kill", 0))
        if "blkio" in p:
            d = p["blkio"]
            m.blkio = pb.V1BlkIOStat()
            for field, names in (("io_service_bytes_recursive", ("blkio.io_service_bytes_recursive",
                                                                  "blkio.throttle.io_service_bytes_recursive",
                                                                  "blkio.throttle.io_service_bytes")),
                                 ("io_serviced_recursive", ("blkio.io_serviced_recursive",
                                                            "blkio.throttle.io_serviced_recursive",
                                                            "blkio.throttle.io_serviced"))):
                for name in names:
                    entries = _blkio(f"{d}/{name}")
                    if entries:
                        getattr(m.blkio, field).extend(entries)
                        break
        return m

    def _v2(self) -> pb.V2Metrics:
        d = self.path
        m = pb.V2Metrics(pids=pb.V2PidsStat(current=_int(f"{d}/pids.current"), limit=_int(f"{d}/pids.max")))
        st = _kv(f"{d}/cpu.stat")
        m.cpu = pb.V2CPUStat(**{key: st.get(key, 0) for key in (
            "usage_usec", "user_usec", "system_usec", "nr_periods", "nr_throttled", "throttled_usec")})
        st = _kv(f"{d}/memory.stat")
        m.memory = pb.V2MemoryStat(**{field: st[field] for field in pb.V2_MEMORY_STAT_FIELDS if field in st})
        m.memory.usage = _int(f"{d}/memory.current")
        m.memory.usage_limit = _int(f"{d}/memory.max")
        m.memory.swap_usage = _int(f"{d}/memory.swap.current")
        m.memory.swap_limit = _int(f"{d}/memory.swap.max")
        ev = _kv(f"{d}/memory.events")
        m.memory_events = pb.V2MemoryEvents(**{key: ev.get(key, 0)
                                               for key in ("low", "high", "max", "oom", "oom_kill")})
        for line in _read(f"{d}/io.stat").splitlines():
            parts = line.split()
            if not parts or ":" not in parts[0]:
                continue
            major, minor = parts[0].split(":")
            e = pb.V2IOEntry(major=int(major), minor=int(minor))
            for kv in parts[1:]:
                k, _, v = kv.partition("=")
                if k in ("rbytes", "wbytes", "rios", "wios"):
                    setattr(e, k, int(v))
            if m.io is None:
                m.io = pb.V2IOStat()
            m.io.usage.append(e)
        return m

    # --- OOM ----------------------------------------------------------------------------------

    def watch_oom(self, reactor: Reactor, on_oom: Callable[[], None]) -> OomWatch | None:
        """Call ``on_oom()`` on each OOM kill; None when the cgroup cannot be watched."""
        try:
            if self.version == 1:
                return _watch_v1(self, reactor, on_oom)
            return _watch_v2(self, reactor, on_oom)
        except OSError:
            return None


class OomWatch:
    """An OOM watch on the reactor. :meth:`poll` handles a notification that is already
    pending (the shim calls it before publishing the init's exit, so that ``/tasks/oom``
    precedes ``/tasks/exit`` when both happened); :meth:`stop` ends the watch."""

    def __init__(self, reactor: Reactor, fds: tuple[int, ...], check: Callable[[], bool],
                 on_oom: Callable[[], None], gone: Callable[[], bool]) -> None:
        self.reactor = reactor
        self.fds = fds
        self._check = check  # consume a notification; True if it means an OOM kill
        self.on_oom = on_oom
        self._gone = gone
        self.closed = False
        reactor.add_reader(fds[0], self.poll)

    def poll(self) -> None:
        if self.closed:
            return
        try:
            fired = self._check()
        except BlockingIOError:
            return
        if self._gone():  # the notification also comes when the cgroup is removed
            self.stop()
            return
        if fired:
            self.on_oom()

    def stop(self) -> None:
        if not self.closed:
            self.closed = True
            self.reactor.forget(self.fds[0])
            for fd in self.fds:
                os.close(fd)


def _watch_v1(cg: Cgroup, reactor: Reactor, on_oom: Callable[[], None]) -> OomWatch | None:
    d = cg.paths.get("memory")
    if not d:
        return None
    efd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
    try:
        ofd = os.open(f"{d}/memory.oom_control", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        os.close(efd)
        raise
    try:
        files.write(f"{d}/cgroup.event_control", f"{efd} {ofd}", create=False)
    except OSError:
        os.close(efd)
        os.close(ofd)
        raise

    def check() -> bool:
        os.eventfd_read(efd)
        return True

    return OomWatch(reactor, (efd, ofd), check, on_oom, lambda: not os.path.isdir(d))


def _watch_v2(cg: Cgroup, reactor: Reactor, on_oom: Callable[[], None]) -> OomWatch | None:
    fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    if fd < 0:
        return None
    events = f"{cg.path}/memory.events"
    if libc.inotify_add_watch(fd, events.encode(), 0x2) < 0:  # IN_MODIFY
        os.close(fd)
        return None
    last = _kv(events).get("oom_kill", 0)

    def check() -> bool:
        nonlocal last
        os.read(fd, 4096)
        now = _kv(events).get("oom_kill", 0)
        fired, last = now > last, max(now, last)
        return fired

    return OomWatch(reactor, (fd,), check, on_oom, lambda: not os.path.isdir(cg.path))


_V1_MEMORY_STAT = {
    "cache": "cache", "rss": "rss", "rss_huge": "rss_huge", "mapped_file": "mapped_file",
    "dirty": "dirty", "writeback": "writeback", "pgpgin": "pg_pg_in", "pgpgout": "pg_pg_out",
    "pgfault": "pg_fault", "pgmajfault": "pg_maj_fault", "inactive_anon": "inactive_anon",
    "active_anon": "active_anon", "inactive_file": "inactive_file", "active_file": "active_file",
    "unevictable": "unevictable", "hierarchical_memory_limit": "hierarchical_memory_limit",
    "hierarchical_memsw_limit": "hierarchical_swap_limit", "total_cache": "total_cache",
    "total_rss": "total_rss", "total_rss_huge": "total_rss_huge", "total_mapped_file": "total_mapped_file",
    "total_dirty": "total_dirty", "total_writeback": "total_writeback", "total_pgpgin": "total_pg_pg_in",
    "total_pgpgout": "total_pg_pg_out", "total_pgfault": "total_pg_fault",
    "total_pgmajfault": "total_pg_maj_fault", "total_inactive_anon": "total_inactive_anon",
    "total_active_anon": "total_active_anon", "total_inactive_file": "total_inactive_file",
    "total_active_file": "total_active_file", "total_unevictable": "total_unevictable",
}


def _blkio(path: str) -> list:
    out = []
    for line in _read(path).splitlines():
        parts = line.split()
        if len(parts) != 3 or ":" not in parts[0]:
            continue
        major, minor = parts[0].split(":")
        try:
            out.append(pb.V1BlkIOEntry(op=parts[1], major=int(major), minor=int(minor), value=int(parts[2])))
        except ValueError:
            continue
    return out
