"""Client-side stdio (containerd's cio): fifos made in a fresh directory, copied to and
from the caller's streams, stdin closed through the daemon once it ends, and cleaned up.
The shim's side is played by plain fd operations here."""

from __future__ import annotations

import asyncio
import io
import os

import pytest

from pycontainerd.client import cio
from pycontainerd.client.tasks import parse_signal
from pycontainerd.errdefs import InvalidArgument


async def test_outputs_are_copied_until_the_writer_closes(tmp_path):
    out, err = io.BytesIO(), bytearray()
    creator = cio.new_creator(None, out, err.extend, fifo_dir=str(tmp_path))
    fio = await creator("p1")
    cfg = fio.config
    assert cfg.stdin == "" and cfg.stdout.endswith("/p1-stdout") and cfg.stderr.endswith("/p1-stderr")
    assert os.path.dirname(os.path.dirname(cfg.stdout)) == str(tmp_path)
    # the shim opens the other ends (read-write, as ours does) and writes
    w_out = os.open(cfg.stdout, os.O_RDWR | os.O_NONBLOCK)
    w_err = os.open(cfg.stderr, os.O_WRONLY | os.O_NONBLOCK)
    os.write(w_out, b"hello ")
    os.write(w_err, b"oops\n")
    await asyncio.sleep(0.05)
    os.write(w_out, b"world\n")
    os.close(w_out)
    os.close(w_err)
    await asyncio.wait_for(fio.wait(), 5)
    assert out.getvalue() == b"hello world\n" and bytes(err) == b"oops\n"
    directory = os.path.dirname(cfg.stdout)
    await fio.close()
    assert not os.path.exists(directory)


async def test_stdin_is_fed_then_closed_through_the_closer(tmp_path):
    creator = cio.capture(b"some input\n", fifo_dir=str(tmp_path))
    fio = await creator("p2")
    # before the process exists, our end keeps the data alive
    await asyncio.sleep(0.05)
    r = os.open(fio.config.stdin, os.O_RDONLY | os.O_NONBLOCK)
    closed = asyncio.Event()

    async def closer():
        closed.set()

    fio.set_stdin_closer(closer)
    await asyncio.wait_for(closed.wait(), 5)
    assert os.read(r, 100) == b"some input\n"
    assert os.read(r, 100) == b""  # our writer is gone: EOF
    os.close(r)
    await fio.close()


async def test_cancel_stops_copies_that_never_connected(tmp_path):
    fio = await cio.capture(fifo_dir=str(tmp_path))("p3")
    fio.cancel()
    await asyncio.wait_for(fio.wait(), 5)
    await fio.close()
    assert os.listdir(tmp_path) == []


async def test_terminal_has_no_stderr_and_uris_need_no_fifos(tmp_path):
    fio = await cio.new_creator(b"", io.BytesIO(), io.BytesIO(), terminal=True, fifo_dir=str(tmp_path))("t")
    assert fio.config.terminal and fio.config.stderr == "" and fio.config.stdin
    await fio.close()
    assert (await cio.null_io("x")).config == cio.IOConfig()
    logf = await cio.log_file(tmp_path / "a b.log")("x")
    assert logf.config.stdout == logf.config.stderr == f"file://{tmp_path}/a%20b.log"
    assert (await cio.binary("/usr/bin/logger", {"tag": "x"})("x")).config.stdout == \
        "binary:///usr/bin/logger?tag=x"
    with pytest.raises(InvalidArgument):
        cio.log_uri("http://example.com/log")
    with pytest.raises(InvalidArgument):
        cio.log_uri("file://relative/path")


def test_remove_fifos_only_touches_its_own_directories(tmp_path):
    config, directory = cio.new_fifo_set("z", stdin=True, stdout=True, stderr=True, fifo_dir=str(tmp_path))
    other = tmp_path.parent / "elsewhere-fifo"
    other.write_text("keep")
    try:
        cio.remove_fifos(cio.IOConfig(str(other), "file:///tmp/x", ""), fifo_dir=str(tmp_path))
        assert other.exists()
        cio.remove_fifos(config, fifo_dir=str(tmp_path))
        assert not os.path.exists(directory)
    finally:
        other.unlink()


@pytest.mark.parametrize("given, number", [(9, 9), ("9", 9), ("KILL", 9), ("SIGKILL", 9), ("sigterm", 15),
                                           ("HUP", 1)])
def test_parse_signal(given, number):
    assert parse_signal(given) == number


@pytest.mark.parametrize("bad", ["SIGNOPE", "0", 0, 99, ""])
def test_parse_signal_rejects(bad):
    with pytest.raises(InvalidArgument):
        parse_signal(bad)
