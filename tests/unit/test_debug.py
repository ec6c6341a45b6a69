"""The debug endpoint (pycontainerd.server.debug, .http): log level at run time over HTTP on a
unix socket, stack dumps, systemd's readiness notice, ``[debug]`` config, and
``pycontainerd --version``."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
import structlog

from pycontainerd import config as config_mod
from pycontainerd import log as logmod
from pycontainerd.errdefs import InvalidArgument
from pycontainerd.server.debug import debug_handler, dump_stacks, sd_notify
from pycontainerd.listen.http import HTTPServer, parse_address
from pycontainerd.version import PACKAGE, REVISION, VERSION


class CapturedLogs:
    def __init__(self, capsys) -> None:
        self.capsys = capsys

    def start(self) -> None:
        logmod.configure("info")

    def err(self) -> str:
        return self.capsys.readouterr().err


@pytest.fixture
def logs(capsys):
    """Call ``logs.start()`` in the test (pytest swaps ``sys.stderr`` between setup and call):
    structlog at ``info`` on the captured stderr; the previous setup is restored after."""
    saved, level = structlog.get_config(), logmod.level()
    yield CapturedLogs(capsys)
    structlog.configure(**saved)
    logmod._remember(level)


def test_parse_address():
    assert parse_address("/run/pycontainerd/debug.sock") == Path("/run/pycontainerd/debug.sock")
    assert parse_address("127.0.0.1:1338") == ("127.0.0.1", 1338)
    assert parse_address("[::1]:1338") == ("::1", 1338)
    assert parse_address(":1338") == (None, 1338)
    for bad in ("localhost", "relative/debug.sock", "host:port", "1.2.3.4:70000"):
        with pytest.raises(InvalidArgument, match="neither an absolute unix socket path nor host:port"):
            parse_address(bad)


async def test_loglevel_get_and_put_switch_every_logger_live(tmp_path, logs):
    logs.start()
    early = logmod.get_logger("made-before")  # a logger created before the change follows it too
    server = HTTPServer("debug", debug_handler)
    path = tmp_path / "debug.sock"
    await server.start(str(path))
    try:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o660 and stat.S_ISSOCK(os.stat(path).st_mode)
        transport = httpx.AsyncHTTPTransport(uds=str(path))
        async with httpx.AsyncClient(transport=transport, base_url="http://debug") as http:
            assert (await http.get("/debug/loglevel")).text == "info\n"
            early.debug("hidden line")
            assert "hidden line" not in logs.err()

            r = await http.put("/debug/loglevel", content=b"debug\n")
            assert (r.status_code, r.text) == (200, "debug\n")
            assert logmod.level() == "debug"
            early.debug("visible line", id="x1")
            err = logs.err()
            assert "level='debug' event='visible line'" in err and "id='x1'" in err
            changed = next(line for line in err.splitlines() if "event='log level changed'" in line)
            assert "new_level='debug'" in changed and "previous='info'" in changed  # the change itself

            bad = await http.put("/debug/loglevel", content=b"loud")
            assert bad.status_code == 400 and "unknown log level 'loud'" in bad.text
            assert logmod.level() == "debug"
            assert (await http.put("/debug/loglevel", content=b"WARN")).text == "warn\n"
            early.info("quiet now")
            assert "quiet now" not in logs.err()
            assert (await http.delete("/debug/loglevel")).status_code == 405
            assert (await http.get("/debug/nothing")).status_code == 404
            stacks = await http.get("/debug/stacks")
            assert stacks.status_code == 200 and "=== asyncio tasks" in stacks.text
    finally:
        await server.close()
    assert not path.exists()


async def test_address_errors_name_the_config_key(tmp_path):
    """A bad or taken ``[debug]``/``[metrics] address`` names that key, not ``--address``."""
    from pycontainerd.errdefs import FailedPrecondition

    with pytest.raises(InvalidArgument, match=r'^\[metrics\] address "notaport" is neither'):
        await HTTPServer("metrics", debug_handler).start("notaport")
    sock = tmp_path / "debug.sock"
    first = HTTPServer("debug", debug_handler)
    await first.start(str(sock))
    try:
        with pytest.raises(FailedPrecondition) as err:
            await HTTPServer("debug", debug_handler).start(str(sock))
        assert str(err.value).startswith(
            f"another daemon is already serving on {sock}; stop it or choose another [debug] address"
        )
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            with pytest.raises(FailedPrecondition, match=r"on \"127.0.0.1:\d+\" \(\[metrics\] address\): "):
                await HTTPServer("metrics", debug_handler).start(f"127.0.0.1:{port}")
    finally:
        await first.close()


async def test_tcp_listener_and_a_bad_request(tmp_path):
    server = HTTPServer("debug", debug_handler)
    await server.start("127.0.0.1:0")
    try:
        host, port = server.address.rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"NONSENSE\r\n\r\n")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)  # then the server closes
        assert answer.startswith(b"HTTP/1.1 400 ") and b"bad request" in answer
        writer.close()
        async with httpx.AsyncClient(base_url=f"http://{server.address}") as http:
            assert (await http.get("/debug/loglevel")).status_code == 200
    finally:
        await server.close()


async def test_dump_stacks_shows_every_task_await_chain_and_thread():
    parked = asyncio.Event()
    release = threading.Event()

    async def innermost_wait():
        await parked.wait()

    async def outer_coroutine():
        await innermost_wait()

    task = asyncio.create_task(outer_coroutine(), name="parked-task")
    thread = threading.Thread(target=release.wait, name="parked-thread", daemon=True)
    thread.start()
    await asyncio.sleep(0)
    try:
        text = dump_stacks()
    finally:
        parked.set()
        release.set()
        await task
        thread.join(5)
    assert "task parked-task coro=test_dump_stacks_shows_every_task_await_chain_and_thread.<locals>.outer_coroutine" \
        in text
    chunk = text.split("task parked-task", 1)[1].split("\ntask ", 1)[0]
    assert "in outer_coroutine" in chunk and "in innermost_wait" in chunk and "await parked.wait()" in chunk
    assert "thread parked-thread" in text and "thread MainThread" in text


def test_sd_notify_sends_to_notify_socket(tmp_path, monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sd_notify("READY=1") is False  # not under systemd: nothing to do
    for address, env in ((str(tmp_path / "notify"), str(tmp_path / "notify")),
                         (f"\0pcd-test-{os.getpid()}", f"@pcd-test-{os.getpid()}")):
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(address)
            monkeypatch.setenv("NOTIFY_SOCKET", env)
            assert sd_notify("READY=1") is True
            sock.settimeout(5)
            assert sock.recv(64) == b"READY=1"
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    assert sd_notify("READY=1") is False


def test_debug_config_section():
    cfg = config_mod.from_dict({"debug": {"address": "/run/x/debug.sock", "uid": 7, "gid": 8, "level": "debug"}})
    assert (cfg.debug.address, cfg.debug.uid, cfg.debug.gid, cfg.debug.level) == ("/run/x/debug.sock", 7, 8, "debug")
    assert config_mod.Config().debug.address == ""  # off by default, as containerd
    with pytest.raises(InvalidArgument, match=r"\[debug\] uid must be a int"):
        config_mod.from_dict({"debug": {"uid": "root"}})


@pytest.mark.parametrize("flag", ["--version", "-v"])
def test_version_flag_prints_like_containerd(flag):
    out = subprocess.run([sys.executable, "-m", "pycontainerd_cmd.daemon", flag], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert out == f"pycontainerd {PACKAGE} {VERSION} {REVISION}".rstrip() + "\n"
    words = out.split()
    assert words[:3] == ["pycontainerd", "pycontainerd", VERSION]
    git = subprocess.run(["git", "-C", os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "rev-parse",
                          "HEAD"], capture_output=True, text=True)
    if git.returncode == 0:  # a checkout: the revision is its commit
        assert words[3] == git.stdout.strip()


@pytest.mark.parametrize("setting", ["--address", "[debug] address"])
def test_long_socket_path_names_the_setting(tmp_path, setting):
    """Issue 18.2: the message names the flag or config key to change (an f-string)."""
    from pycontainerd.listen.sockets import prepare_unix_socket

    path = tmp_path / ("x" * 120) / "s.sock"
    with pytest.raises(InvalidArgument) as err:
        prepare_unix_socket(path, setting)
    assert str(err.value).endswith(f"choose a shorter {setting}: invalid argument")
    assert not path.parent.exists()
