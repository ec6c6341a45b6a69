"""CRI metrics (issue 13): ``ListMetricDescriptors`` and ``ListPodSandboxMetrics`` give
cAdvisor's ``container_*`` metrics with real values, read from the container's cgroup (v1
on this hybrid host), ``/proc``, the snapshotter and the pod's network namespace.

critest's checks (``pkg/validate/pod.go``) hold: every metric it expects (but those it lists
as not yet implemented by runtimes) is described with help and label keys, and reported
for the pod with as many label values as its descriptor has keys. And the values move the
way the container moves: memory it allocates, bytes it writes, packets it sends.
"""

from __future__ import annotations

import os
import random
import time

import pytest

from pycontainerd.api.cri.runtime.v1 import api_pb2 as cri
from pycontainerd.cri.metrics import BASE_KEYS
from tests.support.cri import container_config, cri_env, pod_config

pytestmark = [pytest.mark.integration, pytest.mark.root]

# critest v1.37's expectedMetricDescriptorNames, without its unimplementedMetricDescriptors
EXPECTED = set("""
    container_blkio_device_usage_total container_cpu_cfs_periods_total
    container_cpu_cfs_throttled_periods_total container_cpu_cfs_throttled_seconds_total
    container_cpu_system_seconds_total container_cpu_usage_seconds_total
    container_cpu_user_seconds_total container_file_descriptors container_fs_inodes_free
    container_fs_inodes_total container_fs_limit_bytes container_fs_reads_bytes_total
    container_fs_reads_total container_fs_usage_bytes container_fs_writes_bytes_total
    container_fs_writes_total container_last_seen container_memory_cache container_memory_failcnt
    container_memory_failures_total container_memory_kernel_usage container_memory_mapped_file
    container_memory_max_usage_bytes container_memory_rss container_memory_swap
    container_memory_usage_bytes container_memory_working_set_bytes
    container_network_receive_bytes_total container_network_receive_errors_total
    container_network_receive_packets_dropped_total container_network_receive_packets_total
    container_network_transmit_bytes_total container_network_transmit_errors_total
    container_network_transmit_packets_dropped_total container_network_transmit_packets_total
    container_oom_events_total container_processes container_sockets container_spec_cpu_period
    container_spec_cpu_shares container_spec_memory_limit_bytes
    container_spec_memory_swap_limit_bytes container_start_time_seconds container_threads
    container_threads_max
""".split())
# values critest does not insist on (block I/O accounting may be missing on virtual disks)
OPTIONAL_VALUES = {"container_blkio_device_usage_total", "container_fs_reads_bytes_total",
                   "container_fs_reads_total", "container_fs_writes_bytes_total", "container_fs_writes_total"}

# the shell stays (a loop, not a last command it would exec into), holding what it allocated
WORKER = ("while [ ! -e /tmp/go ]; do sleep 0.1; done; x=$(head -c 24000000 /dev/zero | tr '\\0' x); "
          "touch /tmp/done; while true; do sleep 1; done")


@pytest.fixture
def env(tmp_path, registry, ctr_bin):
    subnet = f"10.{random.randint(200, 250)}.{random.randint(0, 255)}.0/24"
    with cri_env(tmp_path / "cri", registry, netns=True, subnet=subnet, ctr=ctr_bin) as e:
        yield e


def pod_metrics(c, pid: str) -> dict[tuple[str, str], dict[tuple[str, ...], int]]:
    """``{(owner, name): {extra label values: value}}``; owner: a container id or ``POD``."""
    pods = {m.pod_sandbox_id: m for m in c.ListPodSandboxMetrics(cri.ListPodSandboxMetricsRequest()).pod_metrics}
    out: dict = {}
    for m in pods[pid].metrics:
        assert m.label_values[:3] == [pid, "POD", ""]
        out.setdefault(("POD", m.name), {})[tuple(m.label_values[3:])] = m.value.value
    for cm in pods[pid].container_metrics:
        for m in cm.metrics:
            assert m.label_values[0] == cm.container_id and m.timestamp > 0
            out.setdefault((cm.container_id, m.name), {})[tuple(m.label_values[3:])] = m.value.value
    return out


def test_descriptors_are_cadvisors(env):
    descs = env.client.ListMetricDescriptors(cri.ListMetricDescriptorsRequest()).descriptors
    by_name = {d.name: d for d in descs}
    assert len(by_name) == len(descs)
    assert EXPECTED <= set(by_name), EXPECTED - set(by_name)
    assert all(d.help and list(d.label_keys[:3]) == list(BASE_KEYS) for d in descs)
    assert list(by_name["container_network_receive_bytes_total"].label_keys) == [*BASE_KEYS, "interface"]
    assert list(by_name["container_memory_failures_total"].label_keys) == [*BASE_KEYS, "failure_type", "scope"]
    assert list(by_name["container_cpu_usage_seconds_total"].label_keys) == [*BASE_KEYS, "cpu"]


def test_pod_metrics_are_real(env):
    c = env.client
    cfg = pod_config("metrics-pod")
    pid = c.run_pod(cfg)
    cc = container_config("worker", env.images.busybox, command=["sh", "-c", WORKER])
    res = cc.linux.resources
    res.cpu_period, res.cpu_quota, res.cpu_shares = 100000, 50000, 512
    res.memory_limit_in_bytes = res.memory_swap_limit_in_bytes = 256 << 20
    cid = c.create(pid, cc, cfg)
    c.start(cid)
    descs = {d.name: d for d in c.ListMetricDescriptors(cri.ListMetricDescriptorsRequest()).descriptors}
    before = pod_metrics(c, pid)
    # what critest checks: every expected metric is there, with one value per label key
    found = {name for _, name in before}
    assert EXPECTED - OPTIONAL_VALUES <= found, (EXPECTED - OPTIONAL_VALUES) - found
    listed = {m.name: m for p in c.ListPodSandboxMetrics(cri.ListPodSandboxMetricsRequest()).pod_metrics
              if p.pod_sandbox_id == pid for cm in [*p.container_metrics, p] for m in cm.metrics}
    for name, m in listed.items():
        assert len(m.label_values) == len(descs[name].label_keys), name
    ct = [m for p in c.ListPodSandboxMetrics(cri.ListPodSandboxMetricsRequest()).pod_metrics
          if p.pod_sandbox_id == pid for cm in p.container_metrics for m in cm.metrics][0]
    assert ct.label_values[:3] == [cid, "worker", env.images.busybox]
    # the spec, the start time, the processes
    assert before[(cid, "container_spec_cpu_period")][()] == 100000
    assert before[(cid, "container_spec_cpu_quota")][()] == 50000
    assert before[(cid, "container_spec_cpu_shares")][()] == 512
    assert before[(cid, "container_spec_memory_limit_bytes")][()] == 256 << 20
    assert before[(cid, "container_start_time_seconds")][()] == c.status(cid).status.started_at // 10**9
    assert before[(cid, "container_processes")][()] >= 1  # the shell (and its sleep, most of the time)
    assert before[(cid, "container_threads")][()] >= before[(cid, "container_processes")][()]
    assert before[(cid, "container_file_descriptors")][()] >= 3
    assert before[(cid, "container_ulimits_soft")][("max_open_files",)] > 0
    assert before[(cid, "container_oom_events_total")][()] == 0
    if os.path.exists("/proc/pressure/cpu"):  # PSI from the container's cgroup v2 dir (hybrid too)
        assert {(cid, f"container_pressure_{r}_{k}_seconds_total") for r in ("cpu", "memory", "io")
                for k in ("waiting", "stalled")} <= set(before)
    fs = before[(cid, "container_fs_limit_bytes")][()]
    assert fs > before[(cid, "container_fs_usage_bytes")][()] and before[(cid, "container_fs_inodes_total")][()] > 0
    # the pod's own network: eth0 (CNI's veth end), lo left out
    assert set(before[("POD", "container_network_receive_bytes_total")]) == {("eth0",)}
    # now the container moves: allocates ~24 MB, writes 8 MB, sends packets
    gateway = env.subnet.rsplit(".", 1)[0] + ".1"
    r = c.exec(cid, "sh", "-c", f"touch /tmp/go; head -c 8000000 /dev/zero > /big; sync; "
                                f"ping -c 5 -i 0.2 -W 1 {gateway} >/dev/null; echo pinged $?")
    assert r.stdout.strip() == b"pinged 0", r
    deadline = time.monotonic() + 30
    while c.exec(cid, "test", "-e", "/tmp/done").exit_code != 0:
        assert time.monotonic() < deadline, "the worker never allocated its memory"
        time.sleep(0.2)
    after = pod_metrics(c, pid)
    grew = after[(cid, "container_memory_usage_bytes")][()] - before[(cid, "container_memory_usage_bytes")][()]
    rss = after[(cid, "container_memory_rss")][()] - before[(cid, "container_memory_rss")][()]
    assert grew >= 20_000_000 and rss >= 20_000_000, (grew, rss)
    assert after[(cid, "container_memory_working_set_bytes")][()] >= after[(cid, "container_memory_rss")][()]
    assert after[(cid, "container_memory_max_usage_bytes")][()] >= after[(cid, "container_memory_usage_bytes")][()]
    wrote = after[(cid, "container_fs_usage_bytes")][()] - before[(cid, "container_fs_usage_bytes")][()]
    assert wrote >= 8_000_000, wrote
    sent = (after[("POD", "container_network_transmit_packets_total")][("eth0",)]
            - before[("POD", "container_network_transmit_packets_total")][("eth0",)])
    got = (after[("POD", "container_network_receive_packets_total")][("eth0",)]
           - before[("POD", "container_network_receive_packets_total")][("eth0",)])
    assert sent >= 5 and got >= 5, (sent, got)
    assert after[("POD", "container_network_transmit_bytes_total")][("eth0",)] > \
        before[("POD", "container_network_transmit_bytes_total")][("eth0",)]
    faults = after[(cid, "container_memory_failures_total")]
    assert faults[("pgfault", "hierarchy")] > before[(cid, "container_memory_failures_total")][("pgfault", "hierarchy")]
    # a stopped pod is no longer listed
    c.StopPodSandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pid))
    pods = c.ListPodSandboxMetrics(cri.ListPodSandboxMetricsRequest()).pod_metrics
    assert pid not in {p.pod_sandbox_id for p in pods}
    streamed = [p for r in c.runtime.StreamPodSandboxMetrics(cri.StreamPodSandboxMetricsRequest())
                for p in r.pod_sandbox_metrics]
    assert pid not in {p.pod_sandbox_id for p in streamed}
