"""CNI as the specification runs it: configuration loading, the per-plugin configuration
(name, cniVersion, prevResult, runtimeConfig), ADD/DEL/CHECK order, the result cache,
errors, and pod IP selection. Plugins here are small fake programs that record what they
were given; the real ones run in tests/integration/test_cri_pods.py."""

from __future__ import annotations

import json
import os
import stat
import sys

import pytest

from pycontainerd.api.cri.runtime.v1 import api_pb2 as cri
from pycontainerd.cri.cni import (
    CNI,
    NOT_INITIALIZED,
    Network,
    NetworkError,
    load_networks,
    parse_network,
    plugin_config,
    port_mapping_args,
    result_ips,
    select_pod_ips,
)

FAKE = r'''#!{python}
import json, os, sys
name = os.path.basename(sys.argv[0])
conf = json.load(sys.stdin)
logdir = os.environ["FAKE_CNI_LOG"]
n = len(os.listdir(logdir))
env = {{k: v for k, v in os.environ.items() if k.startswith("CNI_")}}
with open(os.path.join(logdir, "%03d.json" % n), "w") as f:
    json.dump({{"plugin": name, "conf": conf, "env": env}}, f)
cmd = os.environ["CNI_COMMAND"]
if name == "failer" and cmd == "ADD":
    print(json.dumps({{"cniVersion": "1.0.0", "code": 11, "msg": "no luck", "details": "on purpose"}}))
    sys.exit(1)
if cmd != "ADD":
    sys.exit(0)
if name == "fakebr":
    print(json.dumps({{"cniVersion": conf["cniVersion"],
        "interfaces": [{{"name": "br0"}}, {{"name": "veth1"}}, {{"name": os.environ["CNI_IFNAME"],
                         "sandbox": os.environ["CNI_NETNS"]}}],
        "ips": [{{"address": "fd00::5/64", "interface": 2}}, {{"address": "10.9.0.5/24", "interface": 2}},
                {{"address": "10.9.0.1/24", "interface": 0}}]}}))
elif name == "loopback":
    print(json.dumps({{"cniVersion": conf["cniVersion"], "interfaces": [{{"name": "lo", "sandbox": "x"}}],
                      "ips": [{{"address": "127.0.0.1/8", "interface": 0}}]}}))
else:  # a chained plugin passes its prevResult on
    print(json.dumps(conf.get("prevResult") or {{}}))
'''


@pytest.fixture
def fake_cni(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in ("fakebr", "chained", "failer", "loopback"):
        p = bindir / name
        p.write_text(FAKE.format(python=sys.executable))
        p.chmod(p.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "log"
    log.mkdir()
    monkeypatch.setenv("FAKE_CNI_LOG", str(log))
    conf = tmp_path / "net.d"
    conf.mkdir()

    def calls():
        return [json.loads((log / n).read_text()) for n in sorted(os.listdir(log))]

    return bindir, conf, calls


def net(doc: dict, ifname="eth0") -> Network:
    return parse_network(json.dumps(doc).encode(), "x.conflist", ifname)


def test_parse_conf_and_conflist():
    single = parse_network(b'{"cniVersion": "0.4.0", "name": "n", "type": "bridge", "bridge": "b"}', "10.conf")
    assert (single.name, single.cni_version, [p["type"] for p in single.plugins]) == ("n", "0.4.0", ["bridge"])
    lst = net({"cniVersion": "1.0.0", "name": "l", "plugins": [{"type": "a"}, {"type": "b"}]})
    assert [p["type"] for p in lst.plugins] == ["a", "b"] and lst.ifname == "eth0"
    for bad in (b"{", b"[]", b'{"name": "x", "plugins": []}', b'{"name": "x", "plugins": [{"nope": 1}]}',
                b'{"type": "bridge"}'):
        with pytest.raises(NetworkError):
            parse_network(bad, "bad.conflist" if b"plugins" in bad else "bad.conf")


def test_load_networks_order_limit_and_bad_files(tmp_path):
    (tmp_path / "30-c.conflist").write_text(json.dumps({"cniVersion": "1.0.0", "name": "c", "plugins": [{"type": "x"}]}))
    (tmp_path / "10-a.conf").write_text(json.dumps({"cniVersion": "0.3.1", "name": "a", "type": "x"}))
    (tmp_path / "20-bad.conflist").write_text("{nope")
    (tmp_path / "99-ignored.txt").write_text("{}")
    nets, errors = load_networks(str(tmp_path), 1)
    assert [n.name for n in nets] == ["a"] and errors == []
    nets, errors = load_networks(str(tmp_path), 0)
    assert [(n.name, n.ifname) for n in nets] == [("a", "eth0"), ("c", "eth1")]
    assert len(errors) == 1 and "20-bad.conflist" in errors[0]
    assert load_networks(str(tmp_path / "missing"), 1) == ([], [])


def test_plugin_config_injection():
    n = net({"cniVersion": "1.0.0", "name": "pods", "plugins": [{"type": "bridge"}]})
    plain = json.loads(plugin_config(n, {"type": "bridge", "name": "ignored"}, None, {}))
    assert plain == {"type": "bridge", "name": "pods", "cniVersion": "1.0.0"}
    caps = {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": ""}]}
    pm = json.loads(plugin_config(n, {"type": "portmap", "capabilities": {"portMappings": True, "bandwidth": True}},
                                  {"ips": []}, caps))
    assert pm["prevResult"] == {"ips": []} and pm["runtimeConfig"] == {"portMappings": caps["portMappings"]}
    off = json.loads(plugin_config(n, {"type": "portmap", "capabilities": {"portMappings": False}}, None, caps))
    assert "runtimeConfig" not in off


def test_port_mapping_args():
    mappings = [cri.PortMapping(protocol=cri.UDP, container_port=53, host_port=5353, host_ip="127.0.0.1"),
                cri.PortMapping(protocol=cri.TCP, container_port=80, host_port=0)]
    assert port_mapping_args(mappings) == [{"hostPort": 5353, "containerPort": 53, "protocol": "udp",
                                            "hostIP": "127.0.0.1"}]


def test_result_ips_and_selection():
    r = {"interfaces": [{"name": "cni0"}, {"name": "eth0", "sandbox": "/var/run/netns/x"}],
         "ips": [{"address": "10.0.0.1/24", "interface": 0}, {"address": "fd::3/64", "interface": 1},
                 {"address": "10.0.0.3/24", "interface": 1}]}
    assert result_ips(r) == ["fd::3", "10.0.0.3"]
    assert select_pod_ips(result_ips(r)) == ("10.0.0.3", ["fd::3"])
    assert result_ips({"ips": [{"address": "10.1.1.1/16"}]}) == ["10.1.1.1"]       # no interface index
    assert result_ips({"cniVersion": "0.2.0", "ip4": {"ip": "10.2.0.4/16"}}) == ["10.2.0.4"]
    assert select_pod_ips(["fd::1"]) == ("fd::1", []) and select_pod_ips([]) == ("", [])


async def test_add_del_check_sequence(tmp_path, fake_cni):
    bindir, conf, calls = fake_cni
    (conf / "10-pods.conflist").write_text(json.dumps({
        "cniVersion": "1.0.0", "name": "pods",
        "plugins": [{"type": "fakebr"}, {"type": "chained", "capabilities": {"portMappings": True}}]}))
    c = CNI([str(tmp_path / "empty"), str(bindir)], str(conf), 1, str(tmp_path / "cache"))
    assert c.status() == (True, "")
    res = await c.setup("sb1", "/var/run/netns/cni-x", pod_namespace="ns", pod_name="web", pod_uid="u1",
                        port_mappings=[cri.PortMapping(container_port=80, host_port=8080)])
    assert (res.ip, res.additional_ips) == ("10.9.0.5", ["fd00::5"])
    log = calls()
    assert [(x["plugin"], x["env"]["CNI_COMMAND"], x["env"]["CNI_IFNAME"]) for x in log] == [
        ("loopback", "ADD", "lo"), ("fakebr", "ADD", "eth0"), ("chained", "ADD", "eth0")]
    env = log[1]["env"]
    assert env["CNI_CONTAINERID"] == "sb1" and env["CNI_NETNS"] == "/var/run/netns/cni-x"
    assert env["CNI_ARGS"] == "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=sb1;K8S_POD_UID=u1"
    assert env["CNI_PATH"] == os.pathsep.join([str(tmp_path / "empty"), str(bindir)])
    assert log[1]["conf"]["name"] == "pods" and "prevResult" not in log[1]["conf"]
    assert log[2]["conf"]["prevResult"]["ips"][1]["address"] == "10.9.0.5/24"      # the bridge's result
    assert log[2]["conf"]["runtimeConfig"]["portMappings"][0]["hostPort"] == 8080
    cached = c.cached("sb1")
    assert [e["ifName"] for e in cached] == ["eth0", "lo"]                         # loopback last on DEL
    # the configuration file may be gone: DEL uses the cached one
    (conf / "10-pods.conflist").unlink()
    await c.check("sb1", "/var/run/netns/cni-x")
    await c.teardown("sb1", "/var/run/netns/cni-x")
    log = calls()[3:]
    # CHECK exists from CNI 0.4.0 on: not for the 0.3.1 loopback
    assert [(x["plugin"], x["env"]["CNI_COMMAND"]) for x in log] == [
        ("fakebr", "CHECK"), ("chained", "CHECK"), ("chained", "DEL"), ("fakebr", "DEL"), ("loopback", "DEL")]
    assert log[2]["conf"]["prevResult"]["ips"][1]["address"] == "10.9.0.5/24"      # cached ADD result
    assert "prevResult" not in log[4]["conf"]                                       # 0.3.1: none on DEL
    assert c.cached("sb1") == []
    await c.teardown("sb1", "/var/run/netns/cni-x")                                  # idempotent
    assert len(calls()) == 8
    ready, message = c.status()
    assert not ready and message.startswith(NOT_INITIALIZED)


async def test_failed_add_is_undone_and_reported(tmp_path, fake_cni):
    bindir, conf, calls = fake_cni
    (conf / "10-pods.conflist").write_text(json.dumps({
        "cniVersion": "1.0.0", "name": "pods", "plugins": [{"type": "fakebr"}, {"type": "failer"}]}))
    c = CNI([str(bindir)], str(conf), 1, str(tmp_path / "cache"))
    with pytest.raises(NetworkError, match=r'plugin type="failer" name="pods" failed \(add\): no luck; on purpose'):
        await c.setup("sb2", "/nonexistent", pod_namespace="n", pod_name="p", pod_uid="u")
    cmds = [(x["plugin"], x["env"]["CNI_COMMAND"]) for x in calls()]
    assert cmds == [("loopback", "ADD"), ("fakebr", "ADD"), ("failer", "ADD"),
                    ("failer", "DEL"), ("fakebr", "DEL"), ("loopback", "DEL")]
    assert c.cached("sb2") == []


async def test_missing_plugin_and_no_network(tmp_path, fake_cni):
    bindir, conf, _ = fake_cni
    c = CNI([str(bindir)], str(conf), 1, str(tmp_path / "cache"))
    with pytest.raises(NetworkError, match=NOT_INITIALIZED):
        await c.setup("sb3", "/x", pod_namespace="n", pod_name="p", pod_uid="u")
    (conf / "10.conflist").write_text(json.dumps({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "nope"}]}))
    with pytest.raises(NetworkError, match='failed to find plugin "nope"'):
        await c.setup("sb3", "/x", pod_namespace="n", pod_name="p", pod_uid="u")
    with pytest.raises(NetworkError, match="invalid CNI plugin type"):
        c.find_plugin("../bin/sh")
