"""The CRI plugin's configuration table and registry hosts (``hosts.toml``) and auth."""

from __future__ import annotations

import base64
import ssl
import tomllib

import pytest

from pycontainerd.api.cri.runtime.v1 import api_pb2 as cri
from pycontainerd.cri.config import CRIConfig, RuntimeEntry
from pycontainerd.cri.registry import (
    endpoints,
    host_dir,
    host_directory,
    is_localhost,
    parse_auth,
    parse_hosts_toml,
    pull_settings,
)
from pycontainerd.errdefs import InvalidArgument, NotFound
from pycontainerd.plugin import build_config
from pycontainerd.remotes.session import Capability


def test_defaults_are_containerds():
    c = CRIConfig()
    assert c.sandbox_image == "registry.k8s.io/pause:3.6"
    assert (c.stream_server_address, c.stream_server_port, c.restrict_oom_score_adj) == ("127.0.0.1", "0", False)
    assert c.containerd.snapshotter == "overlayfs" and c.containerd.default_runtime_name == "runc"
    assert c.containerd.runtimes["runc"].runtime_type == "io.containerd.runc.v2"
    assert (c.cni.conf_dir, c.cni.max_conf_num) == ("/etc/cni/net.d", 1)
    assert c.cni.bin_dirs() == ["/opt/cni/bin", "/usr/lib/cni"]
    assert c.registry.config_path == ""


def test_nested_tables_from_toml():
    import pycontainerd_plugins.cri as plugin

    table = tomllib.loads("""
sandbox_image = "example.com/pause:1"
restrict_oom_score_adj = true
[containerd]
default_runtime_name = "fast"
[containerd.runtimes.fast]
runtime_type = "io.containerd.runc.v2"
[containerd.runtimes.fast.options]
BinaryName = "/usr/bin/crun"
Root = "/run/crun"
[cni]
bin_dir = "/usr/lib/cni"
conf_dir = "/tmp/net.d"
max_conf_num = 2
[registry]
config_path = "/etc/pycontainerd/certs.d"
""")
    c = build_config(plugin.registration, table)
    assert c.restrict_oom_score_adj is True
    name, rt = c.runtime("")
    assert name == "fast" and rt.options == {"BinaryName": "/usr/bin/crun", "Root": "/run/crun"}
    assert c.runtime("fast")[1] is rt
    with pytest.raises(NotFound, match='no runtime for "kata"'):
        c.runtime("kata")
    assert (c.cni.bin_dirs(), c.cni.max_conf_num, c.registry.config_path) == (["/usr/lib/cni"], 2,
                                                                              "/etc/pycontainerd/certs.d")


@pytest.mark.parametrize("table, message", [
    ({"bogus": 1}, "bogus"),
    ({"cni": {"bin_dirs": ["/x"]}}, "bin_dirs"),
    ({"containerd": {"runtimes": {"runc": {"runtime_type": "x", "options": {"Binary": "x"}}}}}, "Binary"),
    ({"containerd": {"default_runtime_name": "nope"}}, "nope"),
    ({"stream_server_port": 10010}, "stream_server_port"),
    ({"stream_server_port": "http"}, "stream_server_port"),
    ({"restrict_oom_score_adj": "yes"}, "restrict_oom_score_adj"),
])
def test_bad_tables_are_refused(table, message):
    import pycontainerd_plugins.cri as plugin

    with pytest.raises(InvalidArgument, match=message):
        build_config(plugin.registration, table)


def test_runtime_entry_options_keys():
    RuntimeEntry(options={"SystemdCgroup": False, "BinaryName": "runc"})
    with pytest.raises(InvalidArgument):
        RuntimeEntry(options={"systemd": True})


# --- registry -------------------------------------------------------------------------


def test_localhost_detection():
    for h in ("localhost", "localhost:5000", "127.0.0.1", "127.0.0.1:5000", "[::1]:5000", "::1"):
        assert is_localhost(h), h
    for h in ("docker.io", "10.0.0.1:5000", "example.com"):
        assert not is_localhost(h), h


def test_default_endpoints_without_config():
    (d,) = endpoints("", "docker.io")
    assert (d.host.scheme, d.host.host) == ("https", "registry-1.docker.io")
    (local,) = endpoints("", "127.0.0.1:5000")
    assert (local.host.scheme, local.host.host, local.skip_verify) == ("http", "127.0.0.1:5000", True)
    (other,) = endpoints("", "quay.io")
    assert (other.host.scheme, other.host.host, other.host.path) == ("https", "quay.io", "/v2")


def test_hosts_dir_lookup(tmp_path):
    assert host_directory("reg:5000") == "reg_5000_"
    (tmp_path / "_default").mkdir()
    (tmp_path / "reg_5000_").mkdir()
    (tmp_path / "other.io").mkdir()
    assert host_dir(str(tmp_path), "reg:5000") == str(tmp_path / "reg_5000_")
    assert host_dir(str(tmp_path), "other.io") == str(tmp_path / "other.io")
    assert host_dir(str(tmp_path), "unknown.io") == str(tmp_path / "_default")
    assert host_dir("", "other.io") is None


def test_hosts_toml(tmp_path):
    text = """
server = "https://registry.example.com"
[host."http://mirror.local:5000"]
  capabilities = ["pull", "resolve"]
  skip_verify = true
  [host."http://mirror.local:5000".header]
    X-Mirror = ["a", "b"]
[host."https://cache.local/prefix"]
  capabilities = ["pull"]
  ca = "ca.pem"
"""
    hosts = parse_hosts_toml(text, str(tmp_path), "registry.example.com")
    assert [(h.host.scheme, h.host.host, h.host.path) for h in hosts] == [
        ("http", "mirror.local:5000", "/v2"), ("https", "cache.local", "/prefix/v2"),
        ("https", "registry.example.com", "/v2")]
    assert hosts[0].host.capabilities == Capability.PULL | Capability.RESOLVE and hosts[0].skip_verify is True
    assert hosts[0].host.headers == {"X-Mirror": "a, b"}
    assert hosts[1].ca == (str(tmp_path / "ca.pem"),) and hosts[1].host.capabilities == Capability.PULL
    assert hosts[2].host.capabilities == Capability.ALL
    with pytest.raises(InvalidArgument, match="capability"):
        parse_hosts_toml('[host."http://x"]\ncapabilities = ["fly"]\n', str(tmp_path), "x")
    with pytest.raises(InvalidArgument):
        parse_hosts_toml("server = [", str(tmp_path), "x")


def test_pull_settings_read_config_path(tmp_path):
    d = tmp_path / "127.0.0.1_5000_"
    d.mkdir()
    (d / "hosts.toml").write_text('server = "http://127.0.0.1:5000"\n')
    s = pull_settings(str(tmp_path), "127.0.0.1:5000/library/busybox:latest")
    assert [(h.host.scheme, h.host.host) for h in s.hosts] == [("http", "127.0.0.1:5000")]
    assert s.hosts_func()("127.0.0.1:5000")[0].host == "127.0.0.1:5000"
    verify = s.verify()  # httpx's own verifying context, made once for every pull
    assert isinstance(verify, ssl.SSLContext) and verify.verify_mode == ssl.CERT_REQUIRED and verify.check_hostname
    assert s.verify() is verify


def test_parse_auth():
    assert parse_auth(None, "r") is None
    assert parse_auth(cri.AuthConfig(), "r") is None  # anonymous
    assert parse_auth(cri.AuthConfig(username="u", password="p"), "r") == ("u", "p")
    assert parse_auth(cri.AuthConfig(identity_token="tok"), "r") == ("", "tok")
    enc = base64.b64encode(b"user:pa:ss").decode()
    assert parse_auth(cri.AuthConfig(auth=enc), "r") == ("user", "pa:ss")
    # for another server: not offered
    assert parse_auth(cri.AuthConfig(username="u", password="p", server_address="other:5000"), "r:5000") is None
    assert parse_auth(cri.AuthConfig(username="u", password="p", server_address="https://r:5000"),
                      "r:5000") == ("u", "p")
    with pytest.raises(InvalidArgument):
        parse_auth(cri.AuthConfig(auth=base64.b64encode(b"nocolon").decode()), "r")
