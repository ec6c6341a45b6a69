"""Client pieces that need no daemon: spec options compose (and are re-exported from
pycontainerd.client), addresses and TLS, connecting to nothing fails fast and clearly."""

from __future__ import annotations

import time

import pytest

import pycontainerd.client as client_mod
from pycontainerd.client import (
    AsyncClient,
    PluginInfo,
    TLSConfig,
    compose,
    with_cpus,
    with_env,
    with_hostname,
    with_image_config,
    with_memory_limit,
    with_mounts,
    with_process_args,
    with_tty,
    with_user,
)
from pycontainerd.client.connection import channel_target, is_unix
from pycontainerd.errdefs import InvalidArgument, Unavailable
from pycontainerd.oci import opts as oci_opts

IMAGE_CONFIG = {"config": {"Env": ["PATH=/bin", "A=image"], "Entrypoint": ["/entry"], "Cmd": ["default"],
                           "WorkingDir": "/work", "User": "app"}}


@pytest.fixture
def rootfs(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n")
    (tmp_path / "etc" / "group").write_text("root:x:0:\napp:x:1000:\nextra:x:2000:app\n")
    return tmp_path


def test_spec_options_compose_in_order(rootfs):
    spec = oci_opts.generate("default", "web", with_image_config(IMAGE_CONFIG), with_env(["A=flag", "B=2"]),
                             compose(with_hostname("box"), with_tty), with_memory_limit(64 << 20), with_cpus(0.5),
                             with_mounts([{"destination": "/data", "type": "bind", "source": "/srv",
                                           "options": ["rbind", "ro"]}]),
                             image_config=IMAGE_CONFIG, rootfs=rootfs)
    p = spec["process"]
    assert p["args"] == ["/entry", "default"] and p["cwd"] == "/work"
    assert p["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [1000, 2000]}
    assert p["env"][:3] == ["PATH=/bin", "A=flag", "B=2"] and p["env"][-1] == "TERM=xterm"
    assert p["terminal"] is True and spec["hostname"] == "box"
    assert spec["linux"]["resources"]["memory"]["limit"] == 64 << 20
    assert spec["linux"]["resources"]["cpu"] == {"quota": 50000, "period": 100000}
    assert any(m["destination"] == "/data" for m in spec["mounts"])
    # later options win: explicit args replace entrypoint and cmd; a user overrides the image's
    spec = oci_opts.generate("default", "web", with_image_config(IMAGE_CONFIG), with_process_args("sh", "-c", "x"),
                             with_user("0:0"), rootfs=rootfs)
    assert spec["process"]["args"] == ["sh", "-c", "x"] and spec["process"]["user"]["uid"] == 0


def test_options_are_reexported_unchanged():
    for name in client_mod.__all__:
        if name.startswith("with_"):
            assert getattr(client_mod, name) is getattr(oci_opts, name), name


def test_bad_options_are_invalid_argument():
    with pytest.raises(InvalidArgument):
        with_memory_limit(-1)
    with pytest.raises(InvalidArgument):
        with_cpus(0)
    with pytest.raises(InvalidArgument):
        with_env("A=1")  # a string, not a list


@pytest.mark.parametrize("address, target", [
    ("/run/x.sock", "unix:/run/x.sock"), ("unix:///run/x.sock", "unix:/run/x.sock"), ("unix:/a", "unix:/a"),
    ("127.0.0.1:1234", "127.0.0.1:1234"), ("tcp://host:99", "host:99"), ("./rel.sock", "unix:rel.sock")])
def test_channel_targets(address, target):
    assert channel_target(address) == target
    assert is_unix(address) == target.startswith("unix:")


def test_tls_config(tmp_path):
    with pytest.raises(InvalidArgument):
        TLSConfig(cert="c.pem").credentials()
    with pytest.raises(Unavailable, match="cannot read TLS file"):
        TLSConfig(ca=str(tmp_path / "missing.pem")).credentials()
    assert TLSConfig().credentials() is not None


async def test_connecting_to_nothing_fails_fast_with_the_address(tmp_path):
    sock = tmp_path / "none.sock"
    c = AsyncClient(str(sock), timeout=0.5, retries=2)
    started = time.monotonic()
    with pytest.raises(Unavailable) as err:
        await c.connect()
    await c.close()
    assert time.monotonic() - started < 5
    assert str(sock) in str(err.value) and "is the daemon running?" in str(err.value)


async def test_missing_and_dead_sockets_say_the_one_documented_message(tmp_path):
    """Issue 18.4: no file at the socket path and a socket nobody listens on both give
    docs/client.md's ``cannot connect to ADDRESS within Ns (is the daemon running?)``, the
    timeout as given, rounded, and ``unavailable`` once."""
    import socket

    from pycontainerd.client.connection import DaemonUnreachable, _seconds

    c = AsyncClient(str(tmp_path / "none.sock"), timeout=0.3, retries=5)
    with pytest.raises(DaemonUnreachable) as err:
        await c.connect()
    await c.close()
    assert str(err.value) == f"cannot connect to {tmp_path / 'none.sock'} within 0.3s (is the daemon running?): unavailable"

    dead = tmp_path / "dead.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(dead))  # a socket file that nobody listens on
        c = AsyncClient(str(dead), timeout=0.3, retries=1)
        with pytest.raises(Unavailable) as err:
            await c.connect()
        await c.close()
        assert str(err.value) == f"cannot connect to {dead} within 0.3s (is the daemon running?): unavailable"
        # a call without connect() first: the same words, not gRPC's "failed to connect to all addresses"
        c = AsyncClient(str(dead), timeout=0.3)
        with pytest.raises(DaemonUnreachable) as err:
            await c.version()
        await c.close()
        assert str(err.value) == f"cannot connect to {dead} within 0.3s (is the daemon running?): unavailable"
    assert [_seconds(v) for v in (1.9999986469993019, 2.0, 0.25, 10)] == ["2", "2", "0.25", "10"]


def test_sync_client_says_the_same(tmp_path):
    from pycontainerd.client import Client

    with pytest.raises(Unavailable) as err:
        with Client(str(tmp_path / "none.sock"), timeout=0.3):
            pass
    assert str(err.value) == f"cannot connect to {tmp_path / 'none.sock'} within 0.3s (is the daemon running?): unavailable"
    client = Client(str(tmp_path / "none.sock"), timeout=0.3)
    try:
        with pytest.raises(Unavailable) as err:
            client.version()
    finally:
        client.close()
    assert str(err.value) == f"cannot connect to {tmp_path / 'none.sock'} within 0.3s (is the daemon running?): unavailable"


def test_sync_client_connect_failure_stops_its_thread(tmp_path):
    import threading

    before = threading.active_count()
    c = client_mod.Client(str(tmp_path / "none.sock"), timeout=0.3, retries=0)
    with pytest.raises(Unavailable):
        c.connect()
    c.close()
    assert threading.active_count() <= before


def test_plugin_status():
    assert PluginInfo("t", "i").status == "ok"
    assert PluginInfo("t", "i", error="no btrfs: skip plugin").status == "skip"
    assert PluginInfo("t", "i", error="boom").status == "error"
