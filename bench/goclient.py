"""Benchmark: what a Go program sees — containerd's own Go client (v1.7, the one dockerd,
nerdctl and BuildKit use) over our socket vs over Debian's containerd.

    python bench/goclient.py            # 20 samples per daemon
    python bench/goclient.py --quick    # 6
    python bench/goclient.py --rpcs     # and a row per RPC of each phase (where the time goes)

The client is ``tests/support/go/ctrclient`` (built from the Go module proxy into
/var/cache/pycontainerd-tools/go on first use, see tests/support/gobuild.py), scenario
``bench``: per sample it deletes the image, then times ``client.Pull`` (with unpack; busybox
from the local registry), ``NewContainer`` (new snapshot + spec), ``NewTask``, ``Start``,
``Wait`` (of ``true``) and ``Delete`` (task, then container with its snapshot). One program
run per sample, the two daemons alternating (ABBA).

With ``--rpcs`` the client also times every RPC it sends (``-trace``: a gRPC client
interceptor, unary calls from send to reply, streams from open to end) and each phase gets a
row per method: the median over samples of that method's total time in the phase, and how
many calls a sample made (RPCs that overlap, like the ``Wait`` sent before ``Start``, make
the rows of a phase add up to more than the phase).
"""

from __future__ import annotations

import json
import subprocess
from collections import defaultdict

from harness import Bench, base_parser

from tests.support.gobuild import go_program

PHASES = ("Pull", "NewContainer", "NewTask", "Start", "Wait", "Delete")


def main() -> None:
    ap = base_parser(__doc__)
    ap.add_argument("--runs", type=int, help="samples per daemon (default 20, quick 6)")
    ap.add_argument("--rpcs", action="store_true", help="also a row per RPC of each phase")
    args = ap.parse_args()
    runs = args.runs or (6 if args.quick else 20)
    with Bench("goclient", args) as b:
        client = go_program("ctrclient")
        ref = b.busybox()
        ours, theirs = b.start_both()
        trace = ("-trace",) if args.rpcs else ()
        for side in (ours, theirs):  # warm-up: first pull, first shim; untimed
            _run(client, side.address, ref, "1")
        calls: dict[tuple[str, str], dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
        for _, side in b.alternate(ours, theirs, runs):
            out = _run(client, side.address, ref, "1", *trace)
            ms = out["ms"]
            for phase in PHASES:
                b.sample(f"Go client {phase}", side, ms[phase][0])
            b.sample("Go client sum of the six", side, sum(ms[p][0] for p in PHASES))
            for phase, rpcs in (out.get("rpcs") or [{}])[0].items():
                per_method: dict[str, list[float]] = defaultdict(list)
                for rpc in rpcs or ():
                    per_method[rpc["method"]].append(rpc["ms"])
                for method, times in per_method.items():
                    b.sample(_rpc_figure(phase, method), side, sum(times))
                    calls[(phase, method)][side.name].append(len(times))
        for phase in (*PHASES, "sum of the six"):
            b.row_from_samples(f"Go client {phase}", unit="ms")
        for phase in PHASES:
            for (p, method), n in sorted(calls.items()):
                if p == phase:
                    counts = "/".join(str(max(n.get(s, [0]))) for s in ("ours", "containerd"))
                    b.row_from_samples(_rpc_figure(phase, method), unit="ms", note=f"calls {counts}")
        b.extra["client"] = "github.com/containerd/containerd v1.7 (tests/support/go/ctrclient/go.mod)"
        b.report()


def _rpc_figure(phase: str, method: str) -> str:
    """``  NewTask: Tasks/Create`` for ``/containerd.services.tasks.v1.Tasks/Create``."""
    service, _, name = method.rpartition("/")
    return f"  {phase}: {service.rsplit('.', 1)[-1]}/{name}"


def _run(client: str, address: str, ref: str, n: str, *flags: str) -> dict:
    r = subprocess.run([client, "-address", address, "-ref", ref, "-namespace", "bench", "-n", n, *flags, "bench"],
                       capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise RuntimeError(f"ctrclient bench on {address}: {r.stderr.strip()}")
    return json.loads(r.stdout)


if __name__ == "__main__":
    main()
