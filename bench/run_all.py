"""Run every side-by-side benchmark and print one combined table.

    python bench/run_all.py            # full figures (takes a while: cold pulls of ~125 MiB)
    python bench/run_all.py --quick    # all of them, quickly
    python bench/run_all.py --only run,events

Each benchmark runs as its own process (``bench/<name>.py``) and writes its own JSON to
``bench/results/``; this script collects them into ``bench/results/all-<time>.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from harness import RESULTS, Row, format_table

BENCHMARKS = ["run", "tasks", "containers", "events", "pull", "unpack"]


def newest(name: str, quick: bool, after: float) -> Path | None:
    prefix = f"{name}{'-quick' if quick else ''}-"
    found = [p for p in RESULTS.glob(f"{prefix}*.json") if p.stat().st_mtime >= after
             and (quick or not p.name.startswith(f"{name}-quick-"))]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", help=f"comma-separated subset of {','.join(BENCHMARKS)}")
    ap.add_argument("--workdir", default="/var/tmp")
    args = ap.parse_args()
    names = args.only.split(",") if args.only else BENCHMARKS
    combined: dict = {"quick": args.quick, "benchmarks": {}}
    rows: list[Row] = []
    failed = []
    for name in names:
        print(f"\n### bench/{name}.py{' --quick' if args.quick else ''}", flush=True)
        t0 = time.time()
        argv = [sys.executable, str(HERE / f"{name}.py"), "--workdir", args.workdir]
        if args.quick:
            argv.append("--quick")
        rc = subprocess.run(argv, check=False).returncode
        path = newest(name, args.quick, t0)
        if rc != 0 or path is None:
            failed.append(name)
            continue
        data = json.loads(path.read_text())
        combined["benchmarks"][name] = data
        for r in data["rows"]:
            rows.append(Row(f"{name}: {r['figure']}", r["unit"], r["ours"], r["containerd"], r["note"],
                            not r["unit"].startswith("ops")))
    print()
    print(format_table("all benchmarks" + (" (quick)" if args.quick else ""), rows))
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"all{'-quick' if args.quick else ''}-{stamp}.json"
    out.write_text(json.dumps(combined, indent=2, default=str) + "\n")
    print(f"\nresults: {out}")
    if failed:
        print(f"FAILED: {', '.join(failed)}")
        sys.exit(1)


if __name__ == "__main__":
    main()
