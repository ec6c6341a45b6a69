"""The daemon process: start-up checks, signals, sockets, listeners, logs (issue 2)."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import threading
import time
from pathlib import Path

import grpc
import pytest
from google.protobuf import empty_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from pycontainerd.api.services.containers.v1 import containers_pb2, containers_pb2_grpc
from pycontainerd.api.services.version.v1 import version_pb2_grpc
from tests.support.thirdparty import SLOW_VERSION_PLUGIN, make_plugin_dist

pytestmark = pytest.mark.integration


def version(channel):
    return version_pb2_grpc.VersionStub(channel).Version(empty_pb2.Empty(), timeout=10)


def test_sigterm_finishes_in_flight_calls_then_exits_zero(daemon_factory, tmp_path):
    env = make_plugin_dist(tmp_path / "site", "slow_version", SLOW_VERSION_PLUGIN)
    (tmp_path / "site" / "slow_version.py.delay").write_text("1.5")
    d = daemon_factory('disabled_plugins = ["io.containerd.grpc.v1.version"]\n', env=env)
    result = {}

    def call():
        with d.channel() as ch:
            result["version"] = version(ch).version

    t = threading.Thread(target=call)
    t.start()
    time.sleep(0.5)  # the call is now in flight
    d.signal(signal.SIGTERM)
    t.join(15)
    assert result.get("version"), d.log()
    assert d.proc.wait(15) == 0
    assert not os.path.exists(d.address)
    assert "stopping" in d.log()


def test_sigint_exits_zero(daemon):
    assert daemon.stop(signal.SIGINT) == 0


def test_socket_mode_0660_and_owner_from_config(daemon_factory):
    d = daemon_factory("[grpc]\nuid = 4321\ngid = 4322\n")
    st = os.stat(d.address)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660
    if os.geteuid() == 0:
        assert (st.st_uid, st.st_gid) == (4321, 4322)


def test_stale_socket_is_replaced(daemon_factory, tmp_path):
    d = daemon_factory(start=False)
    d.base.mkdir(parents=True, exist_ok=True)
    s = socket.socket(socket.AF_UNIX)
    s.bind(d.address)  # bound, never listening, then abandoned: a crash's leftover
    s.close()
    assert os.path.exists(d.address)
    d.start()
    with d.channel() as ch:
        assert version(ch).version


def test_live_socket_refuses_second_daemon(daemon, daemon_factory):
    other = daemon_factory(start=False)
    other.extra_args += ["--address", daemon.address]
    other.start(wait=False)
    assert other.proc.wait(20) == 1
    assert "another daemon is already serving" in other.log()
    with daemon.channel() as ch:  # the first one is untouched
        assert version(ch).version


def test_same_root_refuses_second_daemon(daemon, daemon_factory, tmp_path):
    other = daemon_factory(start=False, base=tmp_path / "second")
    other.extra_args += ["--root", str(daemon.root)]
    other.start(wait=False)
    assert other.proc.wait(20) == 1
    assert "in use by another pycontainerd" in other.log()


def test_non_socket_file_at_address_is_not_deleted(daemon_factory):
    d = daemon_factory(start=False)
    d.base.mkdir(parents=True, exist_ok=True)
    with open(d.address, "w") as f:
        f.write("precious")
    d.start(wait=False)
    assert d.proc.wait(20) == 1
    assert "is not a socket" in d.log()
    assert open(d.address).read() == "precious"


def test_bad_config_exits_with_clear_message(daemon_factory):
    d = daemon_factory("[grpc]\nporrt = 1\n", start=False)
    d.start(wait=False)
    assert d.proc.wait(20) != 0
    assert "unknown option(s) in [grpc]: porrt" in d.log()


def test_required_plugin_failure_is_fatal(daemon_factory):
    d = daemon_factory('required_plugins = ["io.containerd.grpc.v1.nonexistent"]\n', start=False)
    d.start(wait=False)
    assert d.proc.wait(20) == 1
    assert "required plugin io.containerd.grpc.v1.nonexistent did not load" in d.log()


def test_tcp_without_tls_is_refused(daemon_factory):
    d = daemon_factory('[grpc]\ntcp_address = "127.0.0.1:0"\n', start=False)
    d.start(wait=False)
    assert d.proc.wait(20) == 1
    assert "plain TCP is not served" in d.log()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def tls_files(tmp_path):
    d = tmp_path / "pki"
    d.mkdir()
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test-ca",
             "-keyout", "ca.key", "-out", "ca.crt", cwd=d)
    for name in ("server", "client"):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}.key",
                 "-out", f"{name}.csr", cwd=d)
        (d / f"{name}.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-days", "1", "-out", f"{name}.crt", "-extfile", f"{name}.ext", cwd=d)
    return d


def test_tcp_with_tls_and_client_certs(daemon_factory, tls_files):
    port = _free_port()
    d = daemon_factory(
        f'[grpc]\ntcp_address = "127.0.0.1:{port}"\ntcp_tls_cert = "{tls_files}/server.crt"\n'
        f'tcp_tls_key = "{tls_files}/server.key"\ntcp_tls_ca = "{tls_files}/ca.crt"\n'
    )
    ca = (tls_files / "ca.crt").read_bytes()
    good = grpc.ssl_channel_credentials(ca, (tls_files / "client.key").read_bytes(),
                                        (tls_files / "client.crt").read_bytes())
    with grpc.secure_channel(f"127.0.0.1:{port}", good) as ch:
        assert version(ch).version
    no_cert = grpc.ssl_channel_credentials(ca)
    with grpc.secure_channel(f"127.0.0.1:{port}", no_cert) as ch, pytest.raises(grpc.RpcError) as err:
        version(ch)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch, pytest.raises(grpc.RpcError):
        version(ch)
    assert d.proc.poll() is None


def test_health_and_reflection(daemon):
    with daemon.channel() as ch:
        health = health_pb2_grpc.HealthStub(ch)
        for service in ("", "containerd.services.namespaces.v1.Namespaces"):
            resp = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert resp.status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(ch)
        responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        names = {s.name for r in responses for s in r.list_services_response.service}
    assert {"containerd.services.version.v1.Version", "containerd.services.introspection.v1.Introspection",
            "containerd.services.namespaces.v1.Namespaces", "grpc.health.v1.Health"} <= names


def test_json_logs_carry_request_id_and_namespace(daemon_factory):
    d = daemon_factory(extra_args=["--log-format", "json"])
    with d.channel() as ch:
        version_pb2_grpc.VersionStub(ch).Version(empty_pb2.Empty(), metadata=[("containerd-namespace", "k8s.io")])
    d.stop()
    lines = [json.loads(line) for line in d.log().splitlines() if line.startswith("{")]
    rpc = [x for x in lines if x.get("event") == "rpc"]
    assert rpc and rpc[0]["namespace"] == "k8s.io" and len(rpc[0]["request_id"]) == 16
    assert rpc[0]["method"] == "/containerd.services.version.v1.Version/Version"


def test_invalid_namespace_header_is_invalid_argument_where_a_namespace_is_used(daemon):
    """As containerd: Version does not look at the namespace; Containers.List does."""
    bad = [("containerd-namespace", "no/slash")]
    with daemon.channel() as ch:
        assert version_pb2_grpc.VersionStub(ch).Version(empty_pb2.Empty(), metadata=bad).version
        with pytest.raises(grpc.RpcError) as err:
            containers_pb2_grpc.ContainersStub(ch).List(containers_pb2.ListContainersRequest(), metadata=bad)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "namespace validation" in err.value.details()


def test_same_state_refuses_second_daemon(daemon, daemon_factory, tmp_path):
    other = daemon_factory(start=False, base=tmp_path / "third")
    other.extra_args += ["--state", str(daemon.state)]
    other.start(wait=False)
    assert other.proc.wait(20) == 1
    assert "in use by another pycontainerd" in other.log()


def test_socket_path_too_long_is_a_clear_error(daemon_factory, tmp_path):
    d = daemon_factory(start=False)
    d.extra_args += ["--address", str(tmp_path / ("x" * 120) / "s.sock")]
    d.start(wait=False)
    assert d.proc.wait(20) == 1
    assert "longer than 107 bytes" in d.log() and "Traceback" not in d.log()
    assert "choose a shorter --address" in d.log()  # issue 18.2: the setting is named


@pytest.mark.parametrize("flag", ["--root", "--state", "--address"])
@pytest.mark.parametrize("where", ["file", "under-file", "/proc/x"])
def test_unusable_root_or_state_is_one_line_naming_flag_and_path(daemon_factory, tmp_path, flag, where):
    """Issue 18.1: a --root/--state that cannot be a directory, or an --address whose folder
    cannot be, is one line, not a traceback."""
    bad = {"file": tmp_path / "a-file", "under-file": tmp_path / "a-file" / "sub", "/proc/x": Path("/proc/x")}[where]
    if flag == "--address":
        bad = bad / "s.sock"
    (tmp_path / "a-file").write_text("not a directory")
    d = daemon_factory(start=False)
    d.extra_args += [flag, str(bad)]
    d.start(wait=False)
    assert d.proc.wait(20) == 1
    lines = [line for line in d.log().splitlines() if line.strip()]
    if flag == "--address":  # checked once the plugins are loaded: their debug lines come first
        lines = [line for line in lines if not line.startswith("time=")]
    assert lines == [lines[0]] and lines[0].startswith(f"pycontainerd: {flag} {bad}: "), d.log()
    assert (tmp_path / "a-file").read_text() == "not a directory"


@pytest.mark.parametrize("flag", ["--root", "--state", "--address"])
def test_an_empty_path_flag_is_refused_not_the_default(daemon_factory, flag):
    """An empty --root/--state/--address is a mistake (an unset shell variable), never the
    system's own /var/lib/pycontainerd, /run/pycontainerd or its socket."""
    d = daemon_factory(start=False)
    d.extra_args += [flag, ""]
    d.start(wait=False)
    assert d.proc.wait(20) == 1
    assert d.log().strip() == f"pycontainerd: {flag} is empty: give a path, or leave the flag out for the " \
                              "default: invalid argument", d.log()


def test_start_up_error_is_printed_once(daemon_factory):
    """Issue 18.1: a start-up error is one plain line, not also a structured log line."""
    d = daemon_factory('required_plugins = ["io.containerd.grpc.v1.nonexistent"]\n', start=False)
    d.start(wait=False)
    assert d.proc.wait(20) == 1
    errors = [line for line in d.log().splitlines() if "nonexistent did not load" in line]
    assert errors == ["pycontainerd: required plugin io.containerd.grpc.v1.nonexistent did not load: "
                      "no such plugin: failed precondition"], d.log()


def test_unknown_plugin_ids_in_config_are_warned_about(daemon_factory):
    """Issue 18.9: a misspelt id in disabled_plugins is named at warning level, with the
    registered id it probably means; the daemon still starts."""
    d = daemon_factory('disabled_plugins = ["io.containerd.snapshotter.v1.overlayfss"]\n')
    warnings = [line for line in d.log().splitlines() if "level='warning'" in line and "disabled_plugins" in line]
    assert len(warnings) == 1, d.log()
    assert "plugin='io.containerd.snapshotter.v1.overlayfss'" in warnings[0]
    assert "did_you_mean='io.containerd.snapshotter.v1.overlayfs'" in warnings[0]


def test_required_plugin_misspelt_says_did_you_mean(daemon_factory):
    d = daemon_factory('required_plugins = ["io.containerd.snapshotter.v1.overlayfss"]\n', start=False)
    d.start(wait=False)
    assert d.proc.wait(20) == 1
    assert ("pycontainerd: required plugin io.containerd.snapshotter.v1.overlayfss did not load: no such plugin "
            "(did you mean io.containerd.snapshotter.v1.overlayfs?): failed precondition") in d.log().splitlines()


def test_failed_plugin_is_a_warning_with_its_reason_at_boot(daemon_factory):
    """Issue 18.9: a plugin that failed to load shows at warning level on the boot line."""
    d = daemon_factory('[plugins."io.containerd.grpc.v1.cri"]\nsandbox_imag = "pause:3.9"\n')
    booted = [line for line in d.log().splitlines() if "booted" in line]
    assert len(booted) == 1 and "level='warning'" in booted[0], d.log()
    assert "io.containerd.grpc.v1.cri:" in booted[0] and "sandbox_imag" in booted[0]
