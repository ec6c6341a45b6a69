"""Benchmark: what a Go program sees — containerd's own Go client (v1.7, the one dockerd,
nerdctl and BuildKit use) over our socket vs over Debian's containerd.

    python bench/goclient.py            # 20 samples per daemon
    python bench/goclient.py --quick    # 6

The client is ``tests/support/go/ctrclient`` (built from the Go module proxy into
/var/cache/pycontainerd-tools/go on first use, see tests/support/gobuild.py), scenario
``bench``: per sample it deletes the image, then times ``client.Pull`` (with unpack; busybox
from the local registry), ``NewContainer`` (new snapshot + spec), ``NewTask``, ``Start``,
``Wait`` (of ``true``) and ``Delete`` (task, then container with its snapshot). One program
run per sample, the two daemons alternating (ABBA).
"""

from __future__ import annotations

import json
import subprocess

from harness import Bench, base_parser

from tests.support.gobuild import go_program

PHASES = ("Pull", "NewContainer", "NewTask", "Start", "Wait", "Delete")


def main() -> None:
    ap = base_parser(__doc__)
    ap.add_argument("--runs", type=int, help="samples per daemon (default 20, quick 6)")
    args = ap.parse_args()
    runs = args.runs or (6 if args.quick else 20)
    with Bench("goclient", args) as b:
        client = go_program("ctrclient")
        ref = b.busybox()
        ours, theirs = b.start_both()
        for side in (ours, theirs):  # warm-up: first pull, first shim; untimed
            _run(client, side.address, ref, "1")
        for _, side in b.alternate(ours, theirs, runs):
            ms = _run(client, side.address, ref, "1")["ms"]
            for phase in PHASES:
                b.sample(f"Go client {phase}", side, ms[phase][0])
            b.sample("Go client sum of the six", side, sum(ms[p][0] for p in PHASES))
        for phase in (*PHASES, "sum of the six"):
            b.row_from_samples(f"Go client {phase}", unit="ms")
        b.extra["client"] = "github.com/containerd/containerd v1.7 (tests/support/go/ctrclient/go.mod)"
        b.report()


def _run(client: str, address: str, ref: str, n: str) -> dict:
    r = subprocess.run([client, "-address", address, "-ref", ref, "-namespace", "bench", "-n", n, "bench"],
                       capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise RuntimeError(f"ctrclient bench on {address}: {r.stderr.strip()}")
    return json.loads(r.stdout)


if __name__ == "__main__":
    main()
