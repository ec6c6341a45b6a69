"""Benchmark: Docker Engine (Debian's dockerd 20.10) on our daemon vs on Debian's containerd.

    python bench/docker.py            # 20 × run --rm, 3 rounds of 20 parallel run -d
    python bench/docker.py --quick    # 6, 1
    python bench/docker.py --rpcs     # and each RPC dockerd sends per run --rm, timed on the way

One dockerd per daemon (``--containerd <socket>``, own data/exec roots, ``--bridge=none
--iptables=false``), busybox loaded from an archive built with umoci + skopeo. Figures:
``docker run --rm busybox true`` (CLI start to exit), and 20 × ``docker run -d busybox sleep``
started at once → every ``docker run -d`` returned (all running), then ``docker rm -f`` of
the 20. Samples of the two sides alternate (ABBA).

With ``--rpcs`` each dockerd reaches its daemon through ``tests/support/go/rpcproxy`` (built
from the Go module proxy like the Go client), which logs every RPC with its duration; each
``docker run --rm`` then adds a row per call in the order dockerd sends them
(``Containers/Get#3`` is the run's third Containers.Get): the median per daemon, so a slow
step of dockerd's run path names the RPC behind it. The proxy costs both sides the same.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections import Counter, defaultdict

from harness import Bench, Side, base_parser, run_parallel

from tests.support.dockerd import DOCKER, Dockerd, build_busybox_archive

PARALLEL = 20


def main() -> None:
    ap = base_parser(__doc__)
    ap.add_argument("--runs", type=int, help="docker run --rm samples per daemon (default 20, quick 6)")
    ap.add_argument("--rounds", type=int, help="rounds of 20 parallel run -d (default 3, quick 1)")
    ap.add_argument("--rpcs", action="store_true", help="time each RPC dockerd sends (through rpcproxy)")
    args = ap.parse_args()
    runs = args.runs or (6 if args.quick else 20)
    rounds = args.rounds or (1 if args.quick else 3)
    with Bench("docker", args) as b:
        if shutil.which(DOCKER) is None:
            raise SystemExit("Debian's docker.io is not installed (.ci/install installs it)")
        archive = build_busybox_archive(b.base / "image")
        ours, theirs = b.start_both()
        engines: dict[str, Dockerd] = {}
        proxies: dict[str, tuple[subprocess.Popen, str]] = {}
        windows: list[tuple[str, float, float]] = []
        try:
            for side in (ours, theirs):
                address = side.address
                if args.rpcs:
                    address = start_proxy(b, side.name, side.address, proxies)
                engines[side.name] = Dockerd(b.base / f"dockerd-{side.name}", address).start()
                engines[side.name].docker("load", "-i", str(archive))
                engines[side.name].docker("run", "--rm", "busybox", "true")  # warm-up, untimed
            for _, side in b.alternate(ours, theirs, runs):
                t0, wall0 = time.perf_counter(), time.time()
                engines[side.name].docker("run", "--rm", "busybox", "true")
                b.sample("docker run --rm busybox true", side, time.perf_counter() - t0)
                windows.append((side.name, wall0, time.time()))
            for i, side in b.alternate(ours, theirs, rounds):
                parallel(b, side, engines[side.name], i)
            b.row_from_samples("docker run --rm busybox true")
            b.row_from_samples(f"{PARALLEL} × docker run -d (parallel) → all running")
            b.row_from_samples(f"docker rm -f of the {PARALLEL}")
            if args.rpcs:
                rpc_rows(b, proxies, windows)
            b.extra["dockerd"] = engines["ours"].docker("version", "--format", "{{.Server.Version}}").stdout.strip()
            b.report()
        finally:
            for engine in engines.values():
                engine.cleanup()
            for proc, _ in proxies.values():
                proc.kill()
                proc.wait()


def start_proxy(b: Bench, name: str, upstream: str, proxies: dict) -> str:
    """An rpcproxy in front of ``upstream``; returns the socket dockerd should use."""
    from tests.support.gobuild import go_program

    sock, log = b.base / f"rpcproxy-{name}.sock", b.base / f"rpcproxy-{name}.jsonl"
    proc = subprocess.Popen([go_program("rpcproxy"), "-listen", str(sock), "-upstream", upstream, "-out", str(log)],
                            stdin=subprocess.DEVNULL)
    proxies[name] = (proc, str(log))
    deadline = time.monotonic() + 10
    while not sock.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"rpcproxy for {name} did not start")
        time.sleep(0.05)
    return str(sock)


def rpc_rows(b: Bench, proxies: dict, windows: list[tuple[str, float, float]]) -> None:
    """A row per RPC of a ``docker run --rm`` (``Method#k``: the run's k-th call of it), in
    the order dockerd sends them; the events stream (open all along) is left out."""
    calls = {name: [json.loads(line) for line in open(log)] for name, (_, log) in proxies.items()}
    first: dict[str, float] = {}
    for name, t0, t1 in windows:
        seen: Counter[str] = Counter()
        per: defaultdict[str, float] = defaultdict(float)
        for c in sorted((c for c in calls[name] if t0 <= c["start"] <= t1), key=lambda c: c["start"]):
            if c["path"].endswith("/Subscribe"):
                continue
            method = "/".join(c["path"].rsplit(".", 1)[-1].split("/")[-2:])
            seen[method] += 1
            figure = f"  {method}#{seen[method]}"
            first[figure] = min(first.get(figure, float("inf")), c["start"] - t0)
            per[figure] += c["ms"]
        for figure, ms in per.items():
            b.sample(figure, name, ms)
    for figure in sorted(first, key=first.get):
        b.row_from_samples(figure, unit="ms")


def parallel(b: Bench, side: Side, engine: Dockerd, round_: int) -> None:
    names = [f"p{round_}-{k}" for k in range(PARALLEL)]
    argv = [DOCKER, "-H", engine.host]
    took, results = run_parallel([[*argv, "run", "-d", "--name", n, "busybox", "sleep", "300"] for n in names])
    failed = [r.stderr.decode(errors="replace") for r in results if r.returncode != 0]
    if failed:
        raise RuntimeError(f"[{side.name}] docker run -d failed: {failed[0]}")
    running = engine.docker("ps", "-q", "--filter", "status=running").stdout.split()
    if len(running) != PARALLEL:
        raise RuntimeError(f"[{side.name}] {len(running)} of {PARALLEL} running")
    b.sample(f"{PARALLEL} × docker run -d (parallel) → all running", side, took)
    t0 = time.perf_counter()
    engine.docker("rm", "-f", *names)
    b.sample(f"docker rm -f of the {PARALLEL}", side, time.perf_counter() - t0)


if __name__ == "__main__":
    main()
