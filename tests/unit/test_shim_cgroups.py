"""cgroup stats readers on fake cgroup trees (v1 and v2), decoded as containerd's metrics."""

from __future__ import annotations

from pycontainerd.api.cgroups.v1 import metrics_pb2 as v1
from pycontainerd.api.cgroups.v2 import metrics_pb2 as v2
from pycontainerd.shim.cgroups import Cgroup


def write(d, name, text):
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_text(text)


def test_v2_metrics(tmp_path) -> None:
    d = tmp_path / "cg"
    write(d, "pids.current", "3\n")
    write(d, "pids.max", "max\n")
    write(d, "cpu.stat", "usage_usec 100\nuser_usec 60\nsystem_usec 40\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n")
    write(d, "memory.stat", "anon 4096\nfile 8192\npgfault 12\nunknown_key 5\n")
    write(d, "memory.current", "12288\n")
    write(d, "memory.max", "max\n")
    write(d, "memory.events", "low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\n")
    write(d, "io.stat", "8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n")
    a = Cgroup(2, path=str(d)).stats()
    assert a.type_url == "io.containerd.cgroups.v2.Metrics"
    m = v2.Metrics.FromString(a.value)
    assert (m.pids.current, m.pids.limit) == (3, 0)
    assert (m.cpu.usage_usec, m.cpu.user_usec, m.cpu.system_usec) == (100, 60, 40)
    assert (m.memory.anon, m.memory.file, m.memory.pgfault, m.memory.usage) == (4096, 8192, 12, 12288)
    assert (m.memory_events.max, m.memory_events.oom_kill) == (2, 1)
    assert [(e.major, e.minor, e.rbytes, e.wbytes, e.rios, e.wios) for e in m.io.usage] == [(8, 0, 10, 20, 1, 2)]


def test_v1_metrics(tmp_path) -> None:
    mem, cpuacct, cpu, pids, blkio = (tmp_path / n for n in ("memory", "cpuacct", "cpu", "pids", "blkio"))
    write(mem, "memory.stat", "cache 100\nrss 200\npgpgin 7\ntotal_rss 300\nhierarchical_memsw_limit 9\n")
    write(mem, "memory.usage_in_bytes", "4096\n")
    write(mem, "memory.limit_in_bytes", "8192\n")
    write(mem, "memory.max_usage_in_bytes", "5000\n")
    write(mem, "memory.failcnt", "1\n")
    write(mem, "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    write(cpuacct, "cpuacct.usage", "1000000\n")
    write(cpuacct, "cpuacct.usage_percpu", "600000 400000\n")
    write(cpuacct, "cpuacct.stat", "user 3\nsystem 1\n")
    write(cpu, "cpu.stat", "nr_periods 5\nnr_throttled 1\nthrottled_time 99\n")
    write(pids, "pids.current", "2\n")
    write(pids, "pids.max", "100\n")
    write(blkio, "blkio.throttle.io_service_bytes_recursive", "8:0 Read 10\n8:0 Write 20\nTotal 30\n")
    cg = Cgroup(1, paths={"memory": str(mem), "cpuacct": str(cpuacct), "cpu": str(cpu), "pids": str(pids),
                          "blkio": str(blkio)})
    a = cg.stats()
    assert a.type_url == "io.containerd.cgroups.v1.Metrics"
    m = v1.Metrics.FromString(a.value)
    assert (m.pids.current, m.pids.limit) == (2, 100)
    assert m.cpu.usage.total == 1000000 and list(m.cpu.usage.per_cpu) == [600000, 400000]
    assert m.cpu.usage.user > m.cpu.usage.kernel > 0
    assert (m.cpu.throttling.periods, m.cpu.throttling.throttled_periods, m.cpu.throttling.throttled_time) == (5, 1, 99)
    assert (m.memory.cache, m.memory.rss, m.memory.pg_pg_in, m.memory.total_rss) == (100, 200, 7, 300)
    assert m.memory.hierarchical_swap_limit == 9
    assert (m.memory.usage.usage, m.memory.usage.limit, m.memory.usage.max, m.memory.usage.failcnt) == (4096, 8192, 5000, 1)
    assert m.memory_oom_control.oom_kill == 2
    assert [(e.op, e.value) for e in m.blkio.io_service_bytes_recursive] == [("Read", 10), ("Write", 20)]


def test_for_pid_of_this_process() -> None:
    import os

    cg = Cgroup.for_pid(os.getpid())
    assert cg is not None and cg.version in (1, 2) and cg.exists()
    assert Cgroup.for_pid(2**22 + 12345) is None


def test_cgroup_paths_join_the_mount_root() -> None:
    from pycontainerd.shim.cgroups import _join

    assert _join(("/", "/sys/fs/cgroup/memory"), "/default/c1") == "/sys/fs/cgroup/memory/default/c1"
    assert _join(("/", "/sys/fs/cgroup/memory"), "/") == "/sys/fs/cgroup/memory"
    # a mount of a sub-hierarchy (the shim inside a container): the root is cut off
    mount = ("/docker/abc", "/sys/fs/cgroup/memory")
    assert _join(mount, "/docker/abc/default/c1") == "/sys/fs/cgroup/memory/default/c1"
    assert _join(("/docker/abc", "/sys/fs/cgroup/memory"), "/docker/abc") == "/sys/fs/cgroup/memory"
    # outside that root (or only sharing a prefix of its name): taken as is
    assert _join(("/docker/abc", "/m"), "/other/x") == "/m/other/x"
    assert _join(("/docker/abc", "/m"), "/docker/abcd/x") == "/m/docker/abcd/x"
