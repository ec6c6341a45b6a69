"""The shim's stdio plumbing and its reactor, with real pipes and fifos (no runtime)."""

from __future__ import annotations

import os
import signal
import stat
import sys
import time

import pytest

from pycontainerd.shim.stdio import LIMIT, ProcessIO, Pump, Sink, parse_uri
from pycontainerd.ttrpc.reactor import Reactor


@pytest.fixture
def reactor():
    r = Reactor()
    yield r
    r.close()


def spin(r: Reactor, cond, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        r.run_once(0.01)
    assert cond()


def test_reactor_timers_soon_and_signals(reactor) -> None:
    seen = []
    reactor.call_later(0.05, lambda: seen.append("later"))
    t = reactor.call_later(0.01, lambda: seen.append("cancelled"))
    t.cancel()
    reactor.call_soon(lambda: seen.append("soon"))
    reactor.add_signal_handler(signal.SIGUSR1, lambda: seen.append("usr1"))
    os.kill(os.getpid(), signal.SIGUSR1)
    spin(reactor, lambda: "later" in seen and "usr1" in seen)
    assert seen.index("soon") < seen.index("later") and "cancelled" not in seen
    signal.signal(signal.SIGUSR1, signal.SIG_DFL)


def test_reactor_survives_a_failing_callback(reactor) -> None:
    errors, seen = [], []
    reactor.on_error = errors.append
    reactor.call_soon(lambda: 1 / 0)
    reactor.call_soon(lambda: seen.append(1))
    reactor.run_once(0)
    assert len(errors) == 1 and seen == [1]


def test_pump_back_pressure_and_eof(reactor) -> None:
    src_r, src_w = os.pipe()
    dst_r, dst_w = os.pipe()
    sink = Sink(reactor, dst_w)
    done = []
    pump = Pump(reactor, src_r, sink, on_done=lambda: done.append(True))
    os.set_blocking(src_w, False)
    total = 0
    try:  # fill: the destination pipe (64 KiB) + our buffer (64 KiB) + the source pipe
        while True:
            total += os.write(src_w, b"x" * 4096)
            reactor.run_once(0)
    except BlockingIOError:
        pass
    assert total > LIMIT and len(sink.buf) >= LIMIT and not sink.room
    os.close(src_w)
    got = 0
    os.set_blocking(dst_r, False)
    while not done:
        try:
            got += len(os.read(dst_r, 1 << 16))
        except BlockingIOError:
            pass
        reactor.run_once(0.01)
    while True:
        try:
            chunk = os.read(dst_r, 1 << 16)
        except BlockingIOError:
            continue
        if not chunk:
            break
        got += len(chunk)
    assert got == total and pump.done and sink.closed
    os.close(dst_r)


def test_fifo_stdout_does_not_wait_for_a_reader_and_survives_it_leaving(reactor, tmp_path) -> None:
    fifo = str(tmp_path / "out")
    os.mkfifo(fifo)
    io = ProcessIO(reactor, id="c", namespace="ns", stdout=fifo)
    stdio = io.prepare()
    assert stdio.stdin is None and stdio.stdout is not None and stdio.stderr is None
    container = os.dup(stdio.stdout)
    io.start()  # no reader yet: must not block
    os.write(container, b"one\n")
    reactor.run_once(0.05)
    first = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    assert os.read(first, 100) == b"one\n"
    os.close(first)  # the client goes away: the container must not get EPIPE
    os.write(container, b"two\n")
    reactor.run_once(0.05)
    second = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    os.write(container, b"three\n")
    os.close(container)
    spin(reactor, lambda: all(p.done for p in io.pumps))
    # "two" was written while nobody read: the shim's O_RDWR end kept it in the fifo
    assert os.read(second, 100) == b"two\nthree\n"
    os.close(second)
    io.close()


def test_stdout_and_stderr_to_one_fifo_and_drain_at_exit(reactor, tmp_path) -> None:
    fifo = str(tmp_path / "out")
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    io = ProcessIO(reactor, id="c", namespace="ns", stdout=fifo, stderr=fifo)
    stdio = io.prepare()
    child_out, child_err = os.dup(stdio.stdout), os.dup(stdio.stderr)  # what "the container" holds
    io.start()
    os.write(child_out, b"to stdout\n")
    os.write(child_err, b"to stderr\n")
    os.close(child_out)
    os.close(child_err)
    io.drain()  # the process exited: no reactor round needed
    data = os.read(reader, 1000)
    assert sorted(data.splitlines()) == [b"to stderr", b"to stdout"]
    assert all(p.done for p in io.pumps)
    assert os.read(reader, 10) == b""  # the shared fifo writer was closed: EOF for the client
    os.close(reader)
    io.close()


def test_file_uri_appends_both_streams(reactor, tmp_path) -> None:
    log = tmp_path / "sub" / "c.log"
    io = ProcessIO(reactor, id="c", namespace="ns", stdout=f"file://{log}", stderr=f"file://{log}")
    stdio = io.prepare()
    out, err = os.dup(stdio.stdout), os.dup(stdio.stderr)
    io.start()
    os.write(out, b"a\n")
    os.close(out)
    os.write(err, b"b\n")
    os.close(err)
    spin(reactor, lambda: all(p.done for p in io.pumps))
    assert sorted(log.read_text().splitlines()) == ["a", "b"]
    io.close()


def test_stdin_reaches_eof_only_after_close_io_and_the_client_leaving(reactor, tmp_path) -> None:
    fifo = str(tmp_path / "in")
    os.mkfifo(fifo)
    io = ProcessIO(reactor, id="c", namespace="ns", stdin=fifo)
    stdio = io.prepare()
    container_stdin = os.dup(stdio.stdin)
    io.start()
    os.set_blocking(container_stdin, False)
    client = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    os.write(client, b"hello")
    got = b""

    def read_some():
        nonlocal got
        try:
            got += os.read(container_stdin, 100)
        except BlockingIOError:
            pass
        return got

    spin(reactor, lambda: read_some() == b"hello")
    os.close(client)  # the client detaches …
    for _ in range(20):
        reactor.run_once(0.01)
    with pytest.raises(BlockingIOError):  # … but stdin stays open (no EOF)
        os.read(container_stdin, 100)
    io.close_stdin()  # CloseIO
    spin(reactor, lambda: io.stdin_pump is not None and io.stdin_pump.done)
    assert os.read(container_stdin, 100) == b""  # now EOF
    os.close(container_stdin)
    io.close()


def test_binary_logger_gets_fds_3_4_and_signals_ready_on_5(reactor, tmp_path) -> None:
    out = tmp_path / "logged"
    logger = tmp_path / "logger"
    logger.write_text(f"""#!{sys.executable} -S
import os, sys
os.write(5, b"r"); os.close(5)
data = os.read(3, 100) + b"|" + os.read(4, 100)
open({str(out)!r}, "wb").write(data + b"|" + os.environ["CONTAINER_ID"].encode() + b"|" + " ".join(sys.argv[1:]).encode())
""")
    logger.chmod(logger.stat().st_mode | stat.S_IXUSR)
    children = []
    io = ProcessIO(reactor, id="cid", namespace="ns", stdout=f"binary://{logger}?--tag=x", stderr="",
                   on_child=children.append)
    stdio = io.prepare()
    assert len(children) == 1
    os.write(stdio.stdout, b"OUT")
    os.write(stdio.stderr, b"ERR")
    io.start()
    _, status = os.waitpid(children[0], 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert out.read_bytes() == b"OUT|ERR|cid|--tag x"
    io.logger_pid = None
    io.close()


def test_parse_uri() -> None:
    assert parse_uri("/run/fifo") == ("", "/run/fifo", [])
    assert parse_uri("file:///var/log/a%20b.log") == ("file", "/var/log/a b.log", [])
    assert parse_uri("binary:///bin/log?a=1&b") == ("binary", "/bin/log", [("a", "1"), ("b", "")])
