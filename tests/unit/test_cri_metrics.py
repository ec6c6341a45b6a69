"""The CRI metrics' figures from both cgroup versions' metrics (the host runs only v1), and
their labels: as many values as the descriptor has keys, for every metric."""

from google.protobuf import any_pb2

from pycontainerd.api.cgroups.v1 import metrics_pb2 as cg1
from pycontainerd.api.cgroups.v2 import metrics_pb2 as cg2
from pycontainerd.api.cri.runtime.v1 import api_pb2 as cri
from pycontainerd.cri import metrics
from pycontainerd.cri.netns import Interface
from pycontainerd.cri.store import Container, Sandbox


def packed(msg, name):
    return any_pb2.Any(type_url=f"io.containerd.cgroups.{name}.Metrics", value=msg.SerializeToString())


def test_v2_figures():
    m = cg2.Metrics()
    m.cpu.usage_usec, m.cpu.user_usec, m.cpu.system_usec = 3_500_000, 2_000_000, 1_500_000
    m.cpu.nr_periods, m.cpu.nr_throttled, m.cpu.throttled_usec = 10, 4, 2_000_000
    m.memory.usage, m.memory.inactive_file, m.memory.anon, m.memory.file = 100, 30, 60, 40
    m.memory.file_mapped, m.memory.swap_usage, m.memory.pgfault, m.memory.pgmajfault = 5, 7, 11, 2
    m.memory.kernel_stack, m.memory.slab, m.memory.sock = 1, 2, 3
    m.memory_events.max, m.memory_events.oom_kill, m.pids.limit = 6, 1, 50
    m.io.usage.add(major=8, minor=0, rbytes=4096, wbytes=8192, rios=1, wios=2)
    cg = metrics.Cgroup.from_any(packed(m, "v2"))
    assert (cg.cpu_ns, cg.user_ns, cg.system_ns) == (3_500_000_000, 2 * 10**9, 1_500_000_000)
    assert cg.throttled_ns == 2 * 10**9
    assert (cg.usage, cg.working_set, cg.rss, cg.cache, cg.mapped_file, cg.swap) == (100, 70, 60, 40, 5, 7)
    assert (cg.kernel, cg.failcnt, cg.oom_kills, cg.pids_limit) == (6, 6, 1, 50)
    assert cg.faults[("pgmajfault", "container")] == cg.faults[("pgmajfault", "hierarchy")] == 2
    assert cg.io == {(8, 0): {"rbytes": 4096, "wbytes": 8192, "rios": 1, "wios": 2}}


def test_v1_figures():
    m = cg1.Metrics()
    m.cpu.usage.total, m.cpu.usage.user, m.cpu.usage.kernel = 5 * 10**9, 3 * 10**9, 2 * 10**9
    m.cpu.throttling.periods, m.cpu.throttling.throttled_periods, m.cpu.throttling.throttled_time = 9, 3, 10**9
    m.memory.usage.usage, m.memory.usage.max, m.memory.usage.failcnt = 1000, 1500, 2
    m.memory.swap.usage, m.memory.kernel.usage = 1200, 80
    m.memory.total_inactive_file, m.memory.total_rss, m.memory.total_cache = 300, 600, 350
    m.memory.pg_fault, m.memory.total_pg_fault = 10, 25
    m.memory_oom_control.oom_kill, m.pids.limit = 2, 0
    m.blkio.io_service_bytes_recursive.add(op="Read", major=8, minor=16, value=512)
    m.blkio.io_service_bytes_recursive.add(op="Write", major=8, minor=16, value=1024)
    m.blkio.io_service_bytes_recursive.add(op="Total", major=8, minor=16, value=1536)
    m.blkio.io_serviced_recursive.add(op="Write", major=8, minor=16, value=3)
    cg = metrics.Cgroup.from_any(packed(m, "v1"))
    assert (cg.cpu_ns, cg.periods, cg.throttled_periods, cg.throttled_ns) == (5 * 10**9, 9, 3, 10**9)
    assert (cg.usage, cg.max_usage, cg.working_set, cg.rss, cg.cache, cg.swap) == (1000, 1500, 700, 600, 350, 200)
    assert (cg.kernel, cg.failcnt, cg.oom_kills) == (80, 2, 2)
    assert cg.faults[("pgfault", "container")] == 10 and cg.faults[("pgfault", "hierarchy")] == 25
    assert cg.io == {(8, 16): {"rbytes": 512, "wbytes": 1024, "wios": 3}}
    assert metrics.Cgroup.from_any(None) is None


def test_every_metric_has_a_value_per_label_key():
    ct = Container(id="c1", name="n", sandbox_id="s1", config=cri.ContainerConfig(
        metadata=cri.ContainerMetadata(name="web")), created_at=1, image_ref="busybox:1", image_id="sha256:x",
        started_at=7 * 10**9)
    cg = metrics.Cgroup(faults={("pgfault", "container"): 1}, io={(8, 0): {"rbytes": 1}})
    procs = metrics.Processes(count=1, nofile_soft=1024, fs_size=10, fs_inodes=5, fs_inodes_free=4,
                              pressure={r: (3_000_000, 1_000_000) for r in ("cpu", "memory", "io")})
    out = metrics.container_metrics(ct, cg, procs, 3, 9 * 10**9)
    sb = Sandbox(id="s1", name="p", config=cri.PodSandboxConfig(), runtime_handler="", runtime_name="", created_at=1)
    out += metrics.network_metrics(sb, [Interface("lo", 1, True, (), 1, 0, 1, 0),
                                        Interface("eth0", 2, True, (), 100, 0, 50, 0, rx_packets=3)], 9 * 10**9)
    names = {m.name for m in out}
    assert names == set(metrics.BY_NAME)
    for m in out:
        assert len(m.label_values) == len(metrics.BY_NAME[m.name].message().label_keys), m.name
    by = {(m.name, tuple(m.label_values)): m.value.value for m in out}
    assert by[("container_start_time_seconds", ("c1", "web", "busybox:1"))] == 7
    assert by[("container_pressure_io_waiting_seconds_total", ("c1", "web", "busybox:1"))] == 3
    assert by[("container_pressure_io_stalled_seconds_total", ("c1", "web", "busybox:1"))] == 1
    assert by[("container_network_receive_packets_total", ("s1", "POD", "", "eth0"))] == 3
    assert not any(m.label_values[-1] == "lo" for m in out if m.name.startswith("container_network"))


def test_pressure_files(tmp_path):
    (tmp_path / "cpu.pressure").write_text("some avg10=1.00 avg60=0.50 avg300=0.10 total=2500000\n"
                                           "full avg10=0.00 avg60=0.00 avg300=0.00 total=700000\n")
    (tmp_path / "io.pressure").write_text("some avg10=0.00 avg60=0.00 avg300=0.00 total=42\n")
    assert metrics.read_pressure(str(tmp_path)) == {"cpu": (2_500_000, 700_000), "io": (42, 0)}
    assert metrics.read_pressure("") == {}
