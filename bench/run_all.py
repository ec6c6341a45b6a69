"""Run every benchmark and print ONE table: benchmark, figure, ours, containerd, ratio.

    bench/run                         # standard figures (cold pulls of ~125 MiB: a while)
    bench/run --quick                 # every benchmark, few repetitions (minutes)
    bench/run --long                  # the long modes: 1,000-cycle soak, full load, 50 faults
    bench/run --only run,soak,load    # a subset (names: see REGISTRY below, --list)

(``python bench/run_all.py`` is the same program.) Each benchmark runs as its own process
(``bench/<name>.py``) and writes its own JSON to ``bench/results/``; this collects the rows
into ``bench/results/all-<time>.json`` and the table. A benchmark whose script is not
there (yet) is listed as skipped; one that fails is reported at the end (exit status 1),
its rows kept if it wrote any. The ratio is ours / containerd for the same figure from
the same run (< 1: we are faster or smaller, except for figures marked higher=better).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from harness import RESULTS, Row, _fmt  # noqa: E402


class _NoRatio(Row):
    """A row its benchmark gave no ratio (a growth slope near zero: noise)."""

    @property
    def ratio(self) -> float | None:
        return None


def harness_rows(data: dict) -> list[Row]:
    """Rows of a JSON written by :meth:`harness.Bench.report`."""
    out = []
    for r in data.get("rows", []):
        cls = _NoRatio if r.get("ratio") is None else Row
        out.append(cls(r["figure"], r["unit"], r["ours"], r["containerd"], r.get("note", ""),
                       not (r["unit"].startswith("ops") or r["unit"].endswith("/s")
                            or "higher=better" in r.get("note", ""))))
    return out


def fault_rows(data: dict) -> list[Row]:
    """``bench/faults.py`` runs on our daemon only (containerd has no consistency checker
    to run after a kill): its counts, with no containerd figure."""
    faults = data.get("faults", {})
    rows = [Row("kill -9 iterations", "count", data.get("iterations"), None,
                ", ".join(f"{k} {v}" for k, v in faults.items()) + f"; seed {data.get('seed')}"),
            Row("problems found by the checker", "count", data.get("problems"), None, "must be 0"),
            Row("client deletes finished", "count", data.get("client_deletes_finished"), None)]
    return rows


@dataclass
class Entry:
    """One benchmark script: ``bench/<name>.py`` with the arguments of each mode."""

    name: str
    standard: list[str] = field(default_factory=list)
    quick: list[str] = field(default_factory=lambda: ["--quick"])
    long: list[str] | None = None  # None: same as standard
    rows: Callable[[dict], list[Row]] = harness_rows
    about: str = ""


REGISTRY: list[Entry] = [
    Entry("run", about="ctr run --rm, 20 parallel, memory per container"),
    Entry("tasks", about="Tasks.Create/Start/Wait/Delete through one client"),
    Entry("containers", about="containers create, ls of 200"),
    Entry("cli", about="pyctr version / images ls / containers ls as whole commands, vs ctr"),
    Entry("content", about="ctr content get of a 200 MiB blob"),
    Entry("events", about="400 events under 4 writers: ops/s, lag, delivered"),
    Entry("pull", about="cold pull of a ~125 MiB multi-layer image, download only"),
    Entry("unpack", about="unpack alone, and GNU tar's floor"),
    Entry("soak", standard=["--cycles", "200", "--every", "50"], quick=["--quick"],
          long=["--cycles", "1000", "--every", "50"], about="run/rm cycles: RSS, fds, mounts, shims growth"),
    Entry("load", standard=["--quick"], quick=["--quick", "--containers", "6"], long=[],
          about="50 clients list/get/subscribe while containers cycle: p50/p99, lost events"),
    Entry("reads", standard=[], quick=["--quick"], long=["--rounds", "2"],
          about="read throughput vs clients (1, 10, 50, 200) with 1,000 containers; the grpc.aio floor"),
    Entry("cri_stream", about="CRI exec round trip, port-forward throughput"),
    Entry("restart", about="SIGTERM and restart with 30 running tasks: until all RUNNING again"),
    Entry("docker", about="dockerd 20.10 on each daemon: docker run --rm, 20 parallel run -d, rm -f"),
    Entry("goclient", about="containerd's Go client: Pull, NewContainer, NewTask, Start, Wait, Delete"),
    Entry("cri", about="critest -benchmark: median latency of every CRI call of pod/container/image lifecycles"),
    Entry("cri_rtt", about="one small CRI call from a Go client, ours / containerd, and the bare grpc.aio floor"),
    Entry("faults", standard=["--iterations", "10"], quick=["--iterations", "3"], long=["--iterations", "50"],
          rows=fault_rows, about="kill -9 of our daemon at random points (ours only)"),
]
"""Every benchmark ``bench/run`` knows, in the order they run. A new side-by-side script
that uses :class:`harness.Bench` is one line here."""

BENCHMARKS = [e.name for e in REGISTRY]


def newest(name: str, after: float) -> Path | None:
    """The newest ``bench/results/<name>[-quick]-<time>.json`` written since ``after``."""
    found = [p for p in RESULTS.glob(f"{name}-*.json") if p.stat().st_mtime >= after
             and (p.name[len(name) + 1:][:1].isdigit() or p.name.startswith(f"{name}-quick-"))]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def format_table(title: str, rows: list[tuple[str, Row]]) -> str:
    head = ("benchmark", "figure", "ours", "containerd", "ratio", "note")
    body = [(bench, r.figure, _fmt(r.ours, r.unit), _fmt(r.containerd, r.unit),
             "—" if r.ratio is None else f"{r.ratio:.2f}" + ("" if r.lower_is_better else " (higher=better)"),
             r.note) for bench, r in rows]
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
    out = [f"== {title} ==", "  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip(),
           "  ".join("-" * w for w in widths)]
    for b in body:
        out.append("  ".join([b[0].ljust(widths[0]), b[1].ljust(widths[1]), b[2].rjust(widths[2]),
                              b[3].rjust(widths[3]), b[4].rjust(widths[4]), b[5]]).rstrip())
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="few repetitions (minutes)")
    mode.add_argument("--long", action="store_true", help="long modes: soak 1,000 cycles, full load, 50 faults")
    ap.add_argument("--only", help=f"comma-separated subset of {','.join(BENCHMARKS)}")
    ap.add_argument("--skip", help="comma-separated benchmarks not to run")
    ap.add_argument("--workdir", default="/var/tmp")
    ap.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = ap.parse_args(argv)
    if args.list:
        for e in REGISTRY:
            there = (HERE / f"{e.name}.py").exists()
            print(f"{e.name:<12}{'' if there else '(missing) '}{e.about}")
        return 0
    names = args.only.split(",") if args.only else list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        ap.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    skip = set(args.skip.split(",")) if args.skip else set()
    label = "quick" if args.quick else "long" if args.long else "standard"
    combined: dict = {"mode": label, "benchmarks": {}}
    rows: list[tuple[str, Row]] = []
    failed, skipped = [], []
    for entry in (e for e in REGISTRY if e.name in names and e.name not in skip):
        script = HERE / f"{entry.name}.py"
        if not script.exists():
            skipped.append(entry.name)
            continue
        extra = entry.quick if args.quick else (entry.long if args.long and entry.long is not None else entry.standard)
        argv_ = [sys.executable, str(script), "--workdir", args.workdir, *extra]
        print(f"\n### bench/{entry.name}.py {' '.join(extra)}".rstrip(), flush=True)
        t0 = time.time()
        rc = subprocess.run(argv_, check=False).returncode
        path = newest(entry.name, t0)
        if path is not None:
            data = json.loads(path.read_text())
            combined["benchmarks"][entry.name] = data
            rows += [(entry.name, r) for r in entry.rows(data)]
        if rc != 0 or path is None:
            failed.append(f"{entry.name} (exit {rc}{', no results' if path is None else ''})")
    print()
    print(format_table(f"all benchmarks ({label}) — ratio = ours / containerd, same run", rows))
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"all-{label}-{stamp}.json"
    out.write_text(json.dumps(combined, indent=2, default=str) + "\n")
    print(f"\nresults: {out}")
    if skipped:
        print(f"skipped (no script): {', '.join(skipped)}")
    if failed:
        print(f"FAILED: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
