"""Pod sandboxes with CNI networking, against a real daemon, runc and Debian's CNI plugins
(bridge + host-local + portmap, and loopback).

The daemon runs in a network namespace the test creates, so the bridge, the host ends of
the veths and portmap's iptables rules live there and disappear with it; traffic only ever
goes between addresses of a private subnet inside those namespaces. Images are pulled with
Debian's ctr from the host side (the registry listens on the host's loopback).

critest behaviours covered: RunPodSandbox / PodSandboxStatus (IP, namespaces, verbose info)
/ StopPodSandbox / RemovePodSandbox (idempotent), ListPodSandbox filters (id, state,
labels), hostname, DNS config, /etc/hosts, /dev/shm, pod-to-pod networking by IP,
containers of one pod sharing its network (localhost), port mapping, NetworkReady, and the
state surviving a daemon restart.
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import subprocess
import time

import grpc
import pytest

from pycontainerd.api.cri.runtime.v1 import api_pb2 as cri
from pycontainerd.cri.logs import parse_entry
from pycontainerd.testing import netns_pins, pins_of
from tests.support.cri import container_config, cri_env, pod_config

pytestmark = [pytest.mark.integration, pytest.mark.root]


def private_subnet() -> str:
    return f"10.{random.randint(200, 250)}.{random.randint(0, 255)}.0/24"


@pytest.fixture
def env(tmp_path, registry, ctr_bin):
    with cri_env(tmp_path / "cri", registry, netns=True, subnet=private_subnet(), ctr=ctr_bin) as e:
        yield e


def rpc_error(fn, *args):
    with pytest.raises(grpc.RpcError) as err:
        fn(*args)
    return err.value.code(), err.value.details()


def start_pod(env, name, command=("sleep", "1000"), sysctls=None, **kw):
    cfg = pod_config(name, log_dir=str(env.log_dir / name), **kw)
    cfg.linux.sysctls.update(sysctls or {})
    pid = env.client.run_pod(cfg)
    cid = env.client.create(pid, container_config("main", env.images.busybox, command=list(command),
                                                  log_path="main.log"), cfg)
    env.client.start(cid)
    return pid, cid, cfg


def test_pods_get_ips_and_reach_each_other(env):
    c = env.client
    conds = {x.type: x.status for x in c.Status(cri.StatusRequest()).status.conditions}
    assert conds == {"RuntimeReady": True, "NetworkReady": True}
    dns = cri.DNSConfig(servers=["10.96.0.10"], searches=["ns.svc.cluster.local", "svc.cluster.local"],
                        options=["ndots:5"])
    a, ca, _ = start_pod(env, "pod-a", dns=dns, hostname="alpha")
    b, cb, _ = start_pod(env, "pod-b", sysctls={"net.ipv4.ping_group_range": "0 2147483647"})
    subnet = ipaddress.ip_network(env.subnet)
    sa, sb = c.pod_status(a, verbose=True), c.pod_status(b)
    ip_a, ip_b = sa.status.network.ip, sb.status.network.ip
    assert ipaddress.ip_address(ip_a) in subnet and ipaddress.ip_address(ip_b) in subnet and ip_a != ip_b
    assert sa.status.state == cri.SANDBOX_READY and sa.status.created_at > 0
    assert sa.status.linux.namespaces.options.network == cri.POD
    info = json.loads(sa.info["info"])
    netns_path = info["netNamespacePath"]
    assert netns_path.startswith("/var/run/netns/cni-") and os.path.exists(netns_path)
    assert info["pid"] > 0 and info["runtimeSpec"]["hostname"] == "alpha"
    assert {"type": "network", "path": netns_path} in info["runtimeSpec"]["linux"]["namespaces"]
    assert info["cniResult"]["pods"]["ips"]
    # each pod reaches the other by IP
    ping = c.exec(ca, "ping", "-c", "1", "-W", "5", ip_b)
    assert ping.exit_code == 0 and b"1 packets received" in ping.stdout, ping
    assert c.exec(cb, "ping", "-c", "1", "-W", "5", ip_a).exit_code == 0
    # sysctls apply to the pod's namespaces only
    assert c.exec(cb, "cat", "/proc/sys/net/ipv4/ping_group_range").stdout.split() == [b"0", b"2147483647"]
    assert c.exec(ca, "cat", "/proc/sys/net/ipv4/ping_group_range").stdout.split() != [b"0", b"2147483647"]
    # the pod's files
    out = c.exec(ca, "sh", "-c", "hostname; cat /etc/hostname; ip -4 -o addr show dev eth0").stdout.decode()
    lines = out.splitlines()
    assert lines[0] == "alpha" and lines[1] == "alpha" and f"inet {ip_a}/" in lines[2]
    resolv = c.exec(ca, "cat", "/etc/resolv.conf").stdout.decode()
    assert resolv == "search ns.svc.cluster.local svc.cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"
    hosts = c.exec(ca, "cat", "/etc/hosts").stdout.decode()
    assert "127.0.0.1\tlocalhost" in hosts and f"{ip_a}\talpha" in hosts
    shm = c.exec(ca, "sh", "-c", "grep ' /dev/shm ' /proc/mounts").stdout.decode()
    assert shm.split()[2] == "tmpfs" and "size=65536k" in shm
    # /dev/shm is shared by the pod's containers, not by other pods
    c.exec(ca, "sh", "-c", "echo shared > /dev/shm/marker")
    second = c.create(a, container_config("second", env.images.busybox, command=["sleep", "1000"]),
                      pod_config("pod-a", dns=dns, hostname="alpha"))
    c.start(second)
    assert c.exec(second, "cat", "/dev/shm/marker").stdout == b"shared\n"
    assert c.exec(cb, "cat", "/dev/shm/marker").exit_code != 0
    # pod stats read the network namespace
    stats = c.PodSandboxStats(cri.PodSandboxStatsRequest(pod_sandbox_id=a)).stats
    assert stats.linux.network.default_interface.name == "eth0"
    assert stats.linux.network.default_interface.rx_bytes.value > 0


def test_containers_of_a_pod_share_its_network(env):
    c = env.client
    serve = "mkdir -p /www && echo hello-from-web > /www/index.html && echo serving && exec httpd -f -p 8080 -h /www"
    web, web_c, cfg = start_pod(env, "web", command=("sh", "-c", serve))
    client_c = c.create(web, container_config("client", env.images.busybox, command=["sleep", "1000"],
                                              log_path="client.log"), cfg)
    c.start(client_c)
    deadline = time.monotonic() + 10
    while True:
        r = c.exec(client_c, "wget", "-q", "-O", "-", "http://127.0.0.1:8080/index.html")
        if r.exit_code == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert r.stdout == b"hello-from-web\n", r          # same network namespace: localhost
    other, other_c, _ = start_pod(env, "other")
    ip = c.pod_status(web).status.network.ip
    assert c.exec(other_c, "wget", "-q", "-O", "-", f"http://{ip}:8080/index.html").stdout == b"hello-from-web\n"
    assert c.exec(other_c, "wget", "-q", "-O", "-", "http://127.0.0.1:8080/").exit_code != 0  # not its localhost
    entries = [parse_entry(line) for line in open(c.status(web_c).status.log_path, "rb").read().splitlines()]
    assert [(s, t, m) for _, s, t, m in entries] == [("stdout", "F", b"serving")]


def test_port_mapping_through_portmap(env):
    c = env.client
    serve = "mkdir -p /www && echo mapped > /www/index.html && exec httpd -f -p 8080 -h /www"
    pm = cri.PortMapping(protocol=cri.TCP, container_port=8080, host_port=18080)
    web, _, _ = start_pod(env, "mapped", command=("sh", "-c", serve), port_mappings=[pm])
    ip = c.pod_status(web).status.network.ip
    gateway = str(next(ipaddress.ip_network(env.subnet).hosts()))  # the bridge's address, in the test's netns
    deadline = time.monotonic() + 10
    while True:
        r = subprocess.run(["nsenter", f"--net={env.netns}", "/bin/busybox", "wget", "-q", "-O", "-",
                            f"http://{gateway}:18080/index.html"], capture_output=True, timeout=20)
        if r.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert r.stdout == b"mapped\n", (r, ip)
    c.StopPodSandbox(cri.StopPodSandboxRequest(pod_sandbox_id=web))
    rules = subprocess.run(["nsenter", f"--net={env.netns}", "iptables-save", "-t", "nat"], capture_output=True,
                           text=True).stdout
    assert "18080" not in rules  # portmap's DEL removed its rules


def test_list_pod_sandbox_filters(env):
    c = env.client
    a = c.run_pod(pod_config("la", labels={"app": "web", "tier": "front"}))
    b = c.run_pod(pod_config("lb", labels={"app": "web"}))
    d = c.run_pod(pod_config("ld", labels={"app": "db"}))
    c.StopPodSandbox(cri.StopPodSandboxRequest(pod_sandbox_id=b))

    def ids(**f):
        return {p.id for p in c.ListPodSandbox(cri.ListPodSandboxRequest(filter=cri.PodSandboxFilter(**f))).items}

    assert {p.id for p in c.ListPodSandbox(cri.ListPodSandboxRequest()).items} == {a, b, d}
    assert ids(id=a) == {a} and ids(id=d[:8]) == {d} and ids(id="0" * 64) == set()
    assert ids(state=cri.PodSandboxStateValue(state=cri.SANDBOX_READY)) == {a, d}
    assert ids(state=cri.PodSandboxStateValue(state=cri.SANDBOX_NOTREADY)) == {b}
    assert ids(label_selector={"app": "web"}) == {a, b}
    assert ids(label_selector={"app": "web"}, state=cri.PodSandboxStateValue(state=cri.SANDBOX_READY)) == {a}
    items = {p.id: p for p in c.ListPodSandbox(cri.ListPodSandboxRequest()).items}
    assert items[a].metadata.name == "la" and dict(items[a].labels) == {"app": "web", "tier": "front"}
    assert items[b].state == cri.SANDBOX_NOTREADY and items[a].created_at > 0
    streamed = {p.id for r in c.runtime.StreamPodSandboxes(cri.StreamPodSandboxesRequest()) for p in r.pod_sandboxes}
    assert streamed == {a, b, d}


def test_stop_and_remove_are_idempotent_and_release_everything(env):
    c = env.client
    pins = netns_pins()
    pid, cid, _ = start_pod(env, "gone")
    ip = c.pod_status(pid).status.network.ip
    netns_path = json.loads(c.pod_status(pid, verbose=True).info["info"])["netNamespacePath"]
    assert os.path.basename(netns_path) in netns_pins() - pins
    ipam = env.base / "ipam" / "pods"
    assert (ipam / ip).exists()                                   # host-local holds the address
    for _ in range(2):
        c.StopPodSandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pid))
        st = c.pod_status(pid).status
        assert st.state == cri.SANDBOX_NOTREADY and st.network.ip == ""
        assert c.status(cid).status.state == cri.CONTAINER_EXITED
        assert not os.path.exists(netns_path) and not (ipam / ip).exists()
    for _ in range(2):
        c.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pid))
    assert rpc_error(c.pod_status, pid)[0] == grpc.StatusCode.NOT_FOUND
    assert rpc_error(c.status, cid)[0] == grpc.StatusCode.NOT_FOUND
    assert not env.containerd_containers()
    c.StopPodSandbox(cri.StopPodSandboxRequest(pod_sandbox_id="f" * 64))
    c.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id="f" * 64))
    # RemovePodSandbox of a running pod stops it first
    pid2, cid2, _ = start_pod(env, "running")
    path2 = json.loads(c.pod_status(pid2, verbose=True).info["info"])["netNamespacePath"]
    c.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pid2))
    assert not os.path.exists(path2) and not c.ListContainers(cri.ListContainersRequest()).containers
    assert not pins_of(env.base, netns_pins() - pins)        # other tests' pods may come and go meanwhile


def test_network_failure_leaves_nothing(env):
    c = env.client
    good = next(env.conf_dir.iterdir())
    conf = json.loads(good.read_text())
    good.rename(env.base / "good.conflist")
    # the bridge succeeds (veth, address), then the chain fails: all of it must be undone
    conf["plugins"].append({"type": "no-such-plugin"})
    (env.conf_dir / "10-broken.conflist").write_text(json.dumps(conf))
    pins = netns_pins()
    cfg = pod_config("unlucky")
    code, details = rpc_error(c.run_pod, cfg)
    assert code == grpc.StatusCode.UNKNOWN and 'failed to find plugin "no-such-plugin"' in details
    assert not pins_of(env.base, netns_pins() - pins) and not c.ListPodSandbox(cri.ListPodSandboxRequest()).items
    assert not env.containerd_containers()
    ipam = env.base / "ipam" / "pods"
    assert not [n for n in os.listdir(ipam) if n[0].isdigit()]      # the address was released
    veths = subprocess.run(["ip", "-n", os.path.basename(env.netns), "-o", "link", "show", "type", "veth"],
                           capture_output=True, text=True).stdout
    assert veths.strip() == ""
    # no network configured at all
    (env.conf_dir / "10-broken.conflist").unlink()
    code, details = rpc_error(c.run_pod, cfg)
    assert "cni plugin not initialized" in details
    # the name was released: the same pod runs once the network is back
    (env.base / "good.conflist").rename(good)
    pid = c.run_pod(cfg)
    assert c.pod_status(pid).status.state == cri.SANDBOX_READY


def test_state_survives_a_daemon_restart(env):
    c = env.client
    pid, cid, cfg = start_pod(env, "durable", command=("sh", "-c", "echo before; sleep 1000"))
    short = c.create(pid, container_config("short", env.images.busybox, command=["sh", "-c", "sleep 2; exit 7"]), cfg)
    c.start(short)
    created = c.create(pid, container_config("later", env.images.busybox, command=["true"]), cfg)
    before = c.pod_status(pid).status
    log_path = c.status(cid).status.log_path
    env.restart()
    time.sleep(2.5)       # "short" exits while nobody watched it... or just after
    c = env.client
    after = c.pod_status(pid).status
    assert after.state == cri.SANDBOX_READY and after.network.ip == before.network.ip
    assert after.created_at == before.created_at and after.metadata == before.metadata
    st = c.status(cid).status
    assert st.state == cri.CONTAINER_RUNNING and st.log_path == log_path
    assert c.exec(cid, "sh", "-c", "echo after > /proc/1/fd/1").exit_code == 0
    st_short = c.wait_state(short, cri.CONTAINER_EXITED, timeout=10)
    assert (st_short.state, st_short.exit_code, st_short.reason) == (cri.CONTAINER_EXITED, 7, "Error")
    assert c.status(created).status.state == cri.CONTAINER_CREATED
    c.start(created)
    assert c.wait_state(created, cri.CONTAINER_EXITED).exit_code == 0
    # names are still reserved, output still reaches the same log
    code, details = rpc_error(c.create, pid, container_config("main", env.images.busybox, command=["true"]), cfg)
    assert code == grpc.StatusCode.ALREADY_EXISTS and cid in details
    time.sleep(0.3)
    lines = [parse_entry(x)[3] for x in open(log_path, "rb").read().splitlines()]
    assert lines == [b"before", b"after"]
    c.StopContainer(cri.StopContainerRequest(container_id=cid, timeout=1))
    assert c.status(cid).status.state == cri.CONTAINER_EXITED
    c.StopPodSandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pid))
    c.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pid))
    assert not c.ListPodSandbox(cri.ListPodSandboxRequest()).items
