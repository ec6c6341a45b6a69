"""The CRI log format: timestamps, full and partial lines, and the fifo → log copy."""

from __future__ import annotations

import asyncio
import os
import re
from datetime import timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pycontainerd.cri.logs import (
    FULL,
    PARTIAL,
    ContainerIO,
    ExecIO,
    LineSplitter,
    format_entry,
    parse_entry,
    timestamp,
)

NS = 1_475_713_029_669_794_202  # 2016-10-06T00:17:09.669794202Z


def test_timestamp_is_go_rfc3339nano():
    assert timestamp(NS, timezone.utc) == "2016-10-06T00:17:09.669794202Z"
    # trailing zeros of the fraction go, an all-zero fraction goes with its dot
    assert timestamp(1_475_713_029_500_000_000, timezone.utc) == "2016-10-06T00:17:09.5Z"
    assert timestamp(1_475_713_029_000_000_000, timezone.utc) == "2016-10-06T00:17:09Z"
    assert timestamp(NS, timezone(timedelta(hours=2))) == "2016-10-06T02:17:09.669794202+02:00"
    assert timestamp(NS, timezone(timedelta(hours=-5, minutes=-30))) == "2016-10-05T18:47:09.669794202-05:30"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)", timestamp())


def test_entry_format_and_parse():
    line = format_entry("2016-10-06T00:17:09.669794202Z", "stdout", FULL, b"The content of the log entry 1")
    assert line == b"2016-10-06T00:17:09.669794202Z stdout F The content of the log entry 1\n"
    assert parse_entry(line) == ("2016-10-06T00:17:09.669794202Z", "stdout", "F", b"The content of the log entry 1")
    assert parse_entry(format_entry("t", "stderr", PARTIAL, b"")) == ("t", "stderr", "P", b"")
    assert parse_entry(format_entry("t", "stdout", FULL, b"a b  c")) == ("t", "stdout", "F", b"a b  c")


def test_splitter_full_lines_any_chunking():
    s = LineSplitter(100)
    out = s.feed(b"one\ntw") + s.feed(b"o\n\nthree\r\nfour")
    assert out == [(FULL, b"one"), (FULL, b"two"), (FULL, b""), (FULL, b"three")]
    assert s.close() == [(PARTIAL, b"four")]  # no newline before the stream ended
    assert s.close() == []


def test_splitter_long_lines_become_partial_chunks_of_max_size():
    s = LineSplitter(4)
    assert s.feed(b"abcdefghij\n") == [(PARTIAL, b"abcd"), (PARTIAL, b"efgh"), (FULL, b"ij")]
    assert s.feed(b"abcd\n") == [(FULL, b"abcd")]  # exactly the limit is still a full line
    assert s.feed(b"abcdefg") == [(PARTIAL, b"abcd")]  # cut as soon as the limit is passed
    assert s.feed(b"h\n") == [(FULL, b"efgh")]
    assert LineSplitter(0).feed(b"x" * 100_000 + b"\n") == [(FULL, b"x" * 100_000)]


@pytest.mark.parametrize("chunk", [1, 3, 7, 1 << 16])
def test_splitter_is_independent_of_chunking(chunk):
    data = b"short\n" + b"y" * 23 + b"\n\nlast"
    s = LineSplitter(10)
    out = []
    for i in range(0, len(data), chunk):
        out += s.feed(data[i:i + chunk])
    out += s.close()
    joined = b"".join(c + (b"\n" if t == FULL else b"") for t, c in out)
    assert joined == data
    assert all(len(c) <= 10 for _, c in out)


def containerd_records(data: bytes, max_len: int) -> list[tuple[str, bytes]]:
    """The records containerd's redirectLogs writes for ``data``, worked out line by line:
    "\n" or "\r\n" ends a line (F), longer lines are cut into P chunks of exactly
    ``max_len``, and what follows the last newline is written as P at end of stream."""
    *lines, tail = data.split(b"\n")
    out: list[tuple[str, bytes]] = []
    for tag, line in [(FULL, (x[:-1] if x.endswith(b"\r") else x)) for x in lines] + [(PARTIAL, tail)]:
        if tag == PARTIAL and not line:
            break
        while len(line) > max_len:
            out.append((PARTIAL, line[:max_len]))
            line = line[max_len:]
        out.append((tag, line))
    return out


AROUND = (0, 1, 62, 63, 64, 65, 66, 127, 128, 129, 192, 200)


@pytest.mark.parametrize("length", AROUND)
@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b""])
def test_splitter_lengths_at_and_around_the_limit(length, eol):
    data = bytes(range(33, 33 + 64)) * 4
    line = data[:length] + eol
    for chunk in (1, 63, 64, 65, len(line) or 1):
        s = LineSplitter(64)
        out = []
        for i in range(0, len(line), chunk):
            out += s.feed(line[i:i + chunk])
        out += s.close()
        assert out == containerd_records(line, 64), (length, eol, chunk)
    full, rest = divmod(length, 64)
    if eol and length:
        # P…P F, cut exactly at the limit; a multiple of the limit ends with a full chunk
        assert [len(c) for _, c in out] == [64] * full + [rest] if rest else [64] * full
        assert [t for t, _ in out] == [PARTIAL] * (len(out) - 1) + [FULL]
    elif eol:
        assert out == [(FULL, b"")]  # an empty line
    else:
        assert all(t == PARTIAL for t, _ in out)  # no newline before the end: partial, byte for byte
        assert b"".join(c for _, c in out) == line


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([b"a", b"b" * 63, b"c" * 64, b"\n", b"\r", b"\r\n", b"\xff", b" "]),
                max_size=40), st.integers(1, 70))
def test_splitter_matches_containerd_for_any_stream_and_chunking(parts, chunk):
    data = b"".join(parts)
    s = LineSplitter(64)
    out = []
    for i in range(0, len(data), chunk):
        out += s.feed(data[i:i + chunk])
    out += s.close()
    assert out == containerd_records(data, 64)


async def test_container_io_copies_fifos_into_cri_log(tmp_path):
    log = tmp_path / "logs" / "c" / "0.log"
    io = ContainerIO(str(tmp_path / "io"), tty=False, log_path=str(log), max_line=8)
    io.create_fifos()
    io.start()
    out = os.open(io.stdout, os.O_WRONLY)
    err = os.open(io.stderr, os.O_WRONLY)
    os.write(out, b"hello\nlong line here\n")
    os.write(err, b"oops\npartial")
    os.close(out)
    os.close(err)
    assert await io.wait(5)
    await io.close()
    entries = [parse_entry(line) for line in log.read_bytes().splitlines(keepends=True)]
    by_stream = {}
    for ts, stream, tag, content in entries:
        assert re.fullmatch(r"\d{4}-.*(Z|[+-]\d\d:\d\d)", ts)
        by_stream.setdefault(stream, []).append((tag, content))
    assert by_stream["stdout"] == [("F", b"hello"), ("P", b"long lin"), ("F", b"e here")]
    assert by_stream["stderr"] == [("F", b"oops"), ("P", b"partial")]
    io.remove()
    assert not (tmp_path / "io").exists() and log.exists()


async def test_container_io_reopen_after_rotation(tmp_path):
    log = tmp_path / "0.log"
    io = ContainerIO(str(tmp_path / "io"), tty=True, log_path=str(log), max_line=1024)
    io.create_fifos()
    assert io.stderr == ""  # a terminal merges stderr into stdout
    io.start()
    w = os.open(io.stdout, os.O_WRONLY)
    os.write(w, b"before\n")
    await asyncio.sleep(0.1)
    os.rename(log, tmp_path / "0.log.1")
    io.reopen_log()
    os.write(w, b"after\n")
    os.close(w)
    assert await io.wait(5)
    await io.close()
    assert [parse_entry(x)[3] for x in (tmp_path / "0.log.1").read_bytes().splitlines()] == [b"before"]
    assert [parse_entry(x)[3] for x in log.read_bytes().splitlines()] == [b"after"]


async def test_exec_io_caps_output(tmp_path):
    io = ExecIO(str(tmp_path), "e1", limit=10)
    io.start()
    w = os.open(io.stdout, os.O_WRONLY)
    os.write(w, b"0123456789abcdef")
    os.close(w)
    e = os.open(io.stderr, os.O_WRONLY)
    os.close(e)
    assert await io.wait(5)
    assert bytes(io.out) == b"0123456789" and bytes(io.err) == b""
    await io.close()
    assert not os.path.exists(io.stdout)
