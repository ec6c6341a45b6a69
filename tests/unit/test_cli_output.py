"""pyctr's formatting: tables, sizes, ages, times, labels, JSON, metrics rows, progress."""

from __future__ import annotations

import io
import json

import pytest

from pycontainerd.api.cgroups.v1 import metrics_pb2 as v1
from pycontainerd.api.cgroups.v2 import metrics_pb2 as v2
from pycontainerd.api.events import task_pb2
from pycontainerd.cli.output import (
    age,
    dumps,
    event_json,
    go_time,
    human_duration,
    human_size,
    labels_text,
    parse_labels,
    parse_size,
    rfc3339,
    table,
)
from pycontainerd.cli.progress import NoProgress, PlainProgress
from pycontainerd.cli.snapshots import mount_command
from pycontainerd.cli.tasks import metric_rows
from pycontainerd.client import ExitStatus, SnapshotInfo
from pycontainerd.descriptor import Descriptor
from pycontainerd.mount import Mount
from pycontainerd.snapshots.types import Kind


def test_table_aligns_columns_and_trims_the_last():
    text = table(["A", "LONGER", "C"], [["x", "y", "zzz"], ["wide-cell", None, "z"]])
    assert text.splitlines() == ["A           LONGER   C", "x           y        zzz", "wide-cell            z"]
    assert table(["ONLY"], []) == "ONLY\n"


@pytest.mark.parametrize("n, text", [(0, "0 B"), (349, "349 B"), (1024, "1.0 KiB"), (1084151, "1.0 MiB"),
                                     (2 * 1024**3 + 1, "2.0 GiB")])
def test_human_size(n, text):
    assert human_size(n) == text


@pytest.mark.parametrize("text, n", [("67108864", 67108864), ("64m", 64_000_000), ("64MiB", 64 << 20),
                                     ("64mi", 64 << 20), ("1.5g", 1_500_000_000), ("2 KiB", 2048), ("10b", 10)])
def test_parse_size(text, n):
    assert parse_size(text) == n


@pytest.mark.parametrize("bad", ["", "m", "12xb", "-1", "1.2.3m"])
def test_parse_size_rejects(bad):
    with pytest.raises(ValueError):
        parse_size(bad)


@pytest.mark.parametrize("seconds, text", [(0.2, "Less than a second"), (1, "1 second"), (42, "42 seconds"),
                                           (70, "About a minute"), (600, "10 minutes"), (3700, "About an hour"),
                                           (5 * 3600, "5 hours"), (3 * 86400, "3 days"), (20 * 86400, "2 weeks"),
                                           (100 * 86400, "3 months"), (800 * 86400, "2 years")])
def test_human_duration(seconds, text):
    assert human_duration(seconds) == text


def test_times():
    ns = 1_700_000_000_123_456_789
    assert go_time(ns) == "2023-11-14 22:13:20.123456789 +0000 UTC"
    assert rfc3339(ns) == "2023-11-14T22:13:20.123456789Z" and rfc3339(0) == ""
    assert age(0) == "-" and age(ns, now=ns / 1e9 + 120) == "2 minutes"


def test_labels():
    assert labels_text({"b": "2", "a": "1"}) == "a=1,b=2" and labels_text({}) == "-"
    assert parse_labels(["a=1", "b=", "c"]) == {"a": "1", "b": "", "c": ""}
    with pytest.raises(ValueError):
        parse_labels(["=x"])


def test_json_of_dataclasses_descriptors_and_messages():
    """docs/pyctr.md's convention: snake_case keys, RFC 3339 times, enums as lowercase
    names, 64-bit integers of messages as numbers."""
    doc = json.loads(dumps([ExitStatus(3, 5), SnapshotInfo("k", kind=Kind.ACTIVE, created_at=0),
                            Descriptor("m", "sha256:" + "a" * 64, 3)]))
    assert doc[0] == {"code": 3, "exited_at": "1970-01-01T00:00:00.000000005Z", "pid": 0}
    assert doc[1]["name"] == "k" and doc[1]["kind"] == "active" and doc[1]["created_at"] is None
    assert doc[2] == {"media_type": "m", "digest": "sha256:" + "a" * 64, "size": 3, "annotations": {}, "urls": [],
                      "platform": None}
    ev = task_pb2.TaskExit(container_id="web", id="web", pid=7, exit_status=137)
    ev.exited_at.FromNanoseconds(1_700_000_000_123_456_789)
    assert json.loads(event_json(ev)) == {"container_id": "web", "id": "web", "pid": 7, "exit_status": 137,
                                          "exited_at": "2023-11-14T22:13:20.123456789Z"}
    m = v2.Metrics()
    m.memory.usage = 10 << 40
    m.pids.limit = 4
    assert json.loads(dumps({"timestamp": 1_000_000_000, "data": m})) == {
        "timestamp": "1970-01-01T00:00:01.000000000Z", "data": {"memory": {"usage": 10 << 40}, "pids": {"limit": 4}}}


def test_metric_rows_v1_and_v2():
    m1 = v1.Metrics()
    m1.memory.usage.usage = 100
    m1.memory.usage.limit = 200
    m1.cpu.usage.total = 5
    m1.cpu.usage.per_cpu.extend([2, 3])
    m1.pids.current = 1
    rows = dict(metric_rows(m1))
    assert rows["memory.usage_in_bytes"] == 100 and rows["cpuacct.usage_percpu"] == "[2 3]"
    m2 = v2.Metrics()
    m2.memory.usage = 10
    m2.pids.limit = 4
    rows = dict(metric_rows(m2))
    assert rows["memory.usage"] == 10 and rows["pids.limit"] == 4
    assert metric_rows(None) == []


def test_mount_command():
    m = Mount("overlay", "overlay", ("lowerdir=/a:/b", "upperdir=/c d"))
    assert mount_command(m, "/mnt/x") == "mount -t overlay overlay /mnt/x -o 'lowerdir=/a:/b,upperdir=/c d'"
    assert mount_command(Mount("bind", "/src"), "/t") == "mount -t bind /src /t"


def test_plain_progress_lines():
    out = io.StringIO()
    p = PlainProgress(out)
    p("layer-sha256:aa", 10, 20)
    p("layer-sha256:aa", 20, 20)
    p("layer-sha256:aa", 20, 20)
    p("unpacking linux/amd64", 0, 0)
    p.close()
    lines = out.getvalue().splitlines()
    assert lines[0] == "layer-sha256:aa: done 20 B" and lines[1] == "unpacking linux/amd64"
    assert lines[2].startswith("elapsed: ") and "total: 20 B" in lines[2] and len(lines) == 3
    quiet = io.StringIO()
    n = NoProgress(quiet)
    n("k", 1, 1)
    n.close()
    assert quiet.getvalue() == ""
