"""Benchmark: Docker Engine (Debian's dockerd 20.10) on our daemon vs on Debian's containerd.

    python bench/docker.py            # 20 × run --rm, 3 rounds of 20 parallel run -d
    python bench/docker.py --quick    # 6, 1

One dockerd per daemon (``--containerd <socket>``, own data/exec roots, ``--bridge=none
--iptables=false``), busybox loaded from an archive built with umoci + skopeo. Figures:
``docker run --rm busybox true`` (CLI start to exit), and 20 × ``docker run -d busybox sleep``
started at once → every ``docker run -d`` returned (all running), then ``docker rm -f`` of
the 20. Samples of the two sides alternate (ABBA).
"""

from __future__ import annotations

import shutil
import time

from harness import Bench, Side, base_parser, run_parallel

from tests.support.dockerd import DOCKER, Dockerd, build_busybox_archive

PARALLEL = 20


def main() -> None:
    ap = base_parser(__doc__)
    ap.add_argument("--runs", type=int, help="docker run --rm samples per daemon (default 20, quick 6)")
    ap.add_argument("--rounds", type=int, help="rounds of 20 parallel run -d (default 3, quick 1)")
    args = ap.parse_args()
    runs = args.runs or (6 if args.quick else 20)
    rounds = args.rounds or (1 if args.quick else 3)
    with Bench("docker", args) as b:
        if shutil.which(DOCKER) is None:
            raise SystemExit("Debian's docker.io is not installed (.ci/install installs it)")
        archive = build_busybox_archive(b.base / "image")
        ours, theirs = b.start_both()
        engines: dict[str, Dockerd] = {}
        try:
            for side in (ours, theirs):
                engines[side.name] = Dockerd(b.base / f"dockerd-{side.name}", side.address).start()
                engines[side.name].docker("load", "-i", str(archive))
                engines[side.name].docker("run", "--rm", "busybox", "true")  # warm-up, untimed
            for _, side in b.alternate(ours, theirs, runs):
                t0 = time.perf_counter()
                engines[side.name].docker("run", "--rm", "busybox", "true")
                b.sample("docker run --rm busybox true", side, time.perf_counter() - t0)
            for i, side in b.alternate(ours, theirs, rounds):
                parallel(b, side, engines[side.name], i)
            b.row_from_samples("docker run --rm busybox true")
            b.row_from_samples(f"{PARALLEL} × docker run -d (parallel) → all running")
            b.row_from_samples(f"docker rm -f of the {PARALLEL}")
            b.extra["dockerd"] = engines["ours"].docker("version", "--format", "{{.Server.Version}}").stdout.strip()
            b.report()
        finally:
            for engine in engines.values():
                engine.cleanup()


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
