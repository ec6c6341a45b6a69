"""The CRI log file byte for byte, from a real container's output (containerd #4813,
cri #1027): lines at and around ``max_container_log_line_size`` (64 here) split exactly at
the limit into P…P F, empty lines, "\\r\\n" endings, bytes that are not UTF-8, and output
that ends without a newline as a final P record; RFC 3339 nano timestamps. Kubernetes'
crictl reads the file back into the container's output."""

from __future__ import annotations

import re

import pytest

from pycontainerd.api.cri.runtime.v1 import api_pb2 as cri
from tests.support.crictl import crictl
from tests.support.cri import container_config, cri_env, pod_config
from tests.unit.test_cri_logs import AROUND, containerd_records

pytestmark = [pytest.mark.integration, pytest.mark.root]

MAX_LINE = 64
RFC3339NANO = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)")


def _output(seed: int) -> bytes:
    """Lines of every length in AROUND (some ending "\r\n", one with non-UTF-8 bytes), empty
    lines, and a last line with no newline."""
    alphabet = bytes(range(33, 127))
    lines = []
    for i, n in enumerate(AROUND):
        body = bytes(alphabet[(seed + i + k) % len(alphabet)] for k in range(n))
        lines.append(body + (b"\r\n" if i % 3 == 2 else b"\n"))
    lines.insert(3, b"\n\n")
    lines.insert(6, b"\xff\xfe half \xc3\n")
    return b"".join(lines) + b"end without newline " + b"z" * MAX_LINE


def _printf(data: bytes) -> str:
    return "printf '" + "".join(f"\\{b:03o}" for b in data) + "'"


def _records(path) -> dict[str, list[tuple[bytes, str, bytes]]]:
    out: dict[str, list[tuple[bytes, str, bytes]]] = {"stdout": [], "stderr": []}
    with open(path, "rb") as f:
        raw = f.read()
    assert raw.endswith(b"\n")
    for line in raw[:-1].split(b"\n"):
        ts, stream, tag, content = line.split(b" ", 3)
        out[stream.decode()].append((ts, tag.decode(), content))
    return out


def test_log_records_byte_for_byte(tmp_path, registry):
    with cri_env(tmp_path / "cri", registry, max_line=MAX_LINE) as env:
        c = env.client
        c.pull(env.images.busybox)
        pod = pod_config("logs", host_network=True, log_dir=str(env.log_dir / "logs"))
        pid = c.run_pod(pod)
        out, err = _output(0), _output(40)
        script = f"{_printf(out)}; {_printf(err)} >&2"
        cid = c.create(pid, container_config("w", env.images.busybox, command=["/bin/busybox", "sh", "-c", script],
                                             log_path="w/0.log"), pod)
        c.start(cid)
        st = c.wait_state(cid, cri.CONTAINER_EXITED)
        assert st.exit_code == 0
        records = _records(st.log_path)
        for stream, data in (("stdout", out), ("stderr", err)):
            got = [(tag, content) for _, tag, content in records[stream]]
            assert got == containerd_records(data, MAX_LINE), stream
            stamps = [ts for ts, _, _ in records[stream]]
            assert all(RFC3339NANO.fullmatch(ts) for ts in stamps), stamps
        # the last 84 bytes had no newline: P (64 bytes) then the final P (the last 20 bytes)
        assert [r[1:] for r in records["stdout"][-2:]] == [("P", b"end without newline " + b"z" * 44),
                                                          ("P", b"z" * 20)]

        # crictl joins P records back into lines: the output, less the "\r" of "\r\n"
        shown = crictl(env, "logs", cid, text=False)
        assert shown.stdout == out.replace(b"\r\n", b"\n")
        assert shown.stderr.endswith(err.replace(b"\r\n", b"\n"))  # after crictl's own warnings
        stamped = crictl(env, "logs", "--timestamps", cid, text=False).stdout
        assert all(RFC3339NANO.match(line) for line in stamped.split(b"\n") if line)
