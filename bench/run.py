"""Benchmark: running containers, pycontainerd vs Debian containerd, side by side.

    python bench/run.py            # 30 × run --rm, 3 rounds of 20 parallel containers
    python bench/run.py --quick    # 10 × run --rm, 1 round
    python bench/run.py --without-zygote-too   # + our daemon with PYCONTAINERD_SHIM_ZYGOTE=0

Figures (all through Debian's ``ctr``, busybox from a local registry, both daemons fresh):

- daemon RSS idle (after start-up and one ``ctr version``), and again after the
  ``run --rm`` series (helper processes in the daemon's session — our shim zygote,
  started on first use — are counted in);
- ``ctr version``: client start + one RPC, the floor under every other ctr figure;
- ``ctr run --rm IMG ID true``: create container, task, start, wait, delete (median);
- 20 × ``ctr run -d IMG ID sleep`` started at once → until every ``ctr`` returned and
  ``ctr tasks ls`` shows all 20 RUNNING;
- memory per running container, with those 20 running: the shim's RSS (and PSS / USS:
  pages shared between shims are counted once in PSS) plus the daemon's RSS growth / 20;
- SIGKILL + delete of those 20: ``ctr tasks rm -f ID`` then ``ctr containers rm ID`` for
  all 20 at once, until all are gone.
"""

from __future__ import annotations

import statistics
import threading
import time

from harness import Bench, Side, base_parser, mem_kib, run_parallel, summarize


def run_rm(b: Bench, img: str, ours: Side, theirs: Side, n: int, extra: Side | None = None) -> None:
    for side in (ours, theirs, *([extra] if extra else [])):  # warm-up: page cache, our shim zygote
        side.ctr("run", "--rm", img, b.new_id("warm"), "true")
    for i, side in b.alternate(ours, theirs, n):
        b.sample("ctr run --rm busybox true", side, side.timed_ctr("run", "--rm", img, b.new_id("r"), "true"))
        if extra is not None and side is theirs:
            b.sample("ctr run --rm busybox true", extra, extra.timed_ctr("run", "--rm", img, b.new_id("r"), "true"))


def parallel_round(b: Bench, img: str, side: Side, count: int) -> None:
    ids = [b.new_id("p") for _ in range(count)]
    before = side.daemon_mem()
    t0 = time.perf_counter()
    elapsed, results = run_parallel([side.argv("run", "-d", img, i, "sleep", "100000") for i in ids], env=side.env())
    bad = [r for r in results if r.returncode != 0]
    if bad:
        raise RuntimeError(f"[{side.name}] ctr run -d failed: {bad[0].stderr.decode(errors='replace')[-1000:]}")
    while True:  # normally already true once every ctr has returned
        status = side.task_status()
        if all(status.get(i) == "RUNNING" for i in ids):
            break
        elapsed = time.perf_counter() - t0
        time.sleep(0.01)
    b.sample(f"{count} × ctr run -d … sleep → all RUNNING", side, elapsed)

    time.sleep(0.5)  # let lazily-allocated memory settle
    shims = side.shim_pids()
    after = side.daemon_mem()
    mems = [mem_kib(p) for p in shims]
    if mems:
        rss = statistics.fmean(m["rss"] for m in mems) / 1024
        pss = statistics.fmean(m["pss"] for m in mems) / 1024
        uss = statistics.fmean(m["uss"] for m in mems) / 1024
        growth_rss = max(0, after["rss"] - before["rss"]) / 1024 / count
        growth_pss = max(0, after["pss"] - before["pss"]) / 1024 / count
        b.sample("shim RSS per container", side, rss)
        b.sample("shim PSS per container", side, pss)
        b.sample("shim USS per container", side, uss)
        b.sample("daemon RSS growth per container", side, growth_rss)
        b.sample("memory per running container (shim RSS + daemon growth)", side, rss + growth_rss)
        b.sample("memory per running container (shim PSS + daemon PSS growth)", side, pss + growth_pss)
        b.extra.setdefault("shims", {}).setdefault(side.name, []).append(
            {"count": len(shims), "per_shim_kib": mems, "daemon_before": before, "daemon_after": after})

    # SIGKILL + delete, all at once
    t0 = time.perf_counter()
    errors: list[str] = []

    def kill_delete(cid: str) -> None:
        for args in (("tasks", "rm", "-f", cid), ("containers", "rm", cid)):
            r = side.ctr(*args, check=False)
            if r.returncode != 0:
                errors.append(r.stderr.decode(errors="replace")[-500:])

    threads = [threading.Thread(target=kill_delete, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    b.sample(f"SIGKILL + delete {count} running containers", side, time.perf_counter() - t0)
    if errors:
        raise RuntimeError(f"[{side.name}] kill/delete failed: {errors[0]}")


def main() -> None:
    ap = base_parser(__doc__)
    ap.add_argument("--runs", type=int, help="ctr run --rm repetitions per daemon (default 30, quick 10)")
    ap.add_argument("--rounds", type=int, help="rounds of 20 parallel containers (default 3, quick 1)")
    ap.add_argument("--parallel", type=int, default=20)
    ap.add_argument("--without-zygote-too", action="store_true",
                    help="also time ctr run --rm on a third daemon of ours with PYCONTAINERD_SHIM_ZYGOTE=0 "
                         "(every shim an interpreter start: the figure before the zygote)")
    args = ap.parse_args()
    runs = args.runs or (10 if args.quick else 30)
    rounds = args.rounds or (1 if args.quick else 3)

    with Bench("run", args) as b:
        img = b.busybox()
        ours, theirs = b.start_both()
        for side in (ours, theirs):
            side.ctr("version")
        time.sleep(1.0)
        for side in (ours, theirs):
            m = side.daemon_mem()
            b.sample("daemon RSS idle", side, m["rss"] / 1024)
            b.extra.setdefault("daemon_idle", {})[side.name] = m

        for _, side in b.alternate(ours, theirs, 20):
            b.sample("ctr version (floor)", side, side.timed_ctr("version"))

        nozygote = None
        if args.without_zygote_too:
            nozygote = b.start_ours("-nozygote", env={"PYCONTAINERD_SHIM_ZYGOTE": "0"}, name="ours, no zygote")
        for side in (ours, theirs, *([nozygote] if nozygote else [])):
            side.ctr("images", "pull", "--plain-http", img)
        run_rm(b, img, ours, theirs, runs, nozygote)
        if nozygote is not None:
            b.stop(nozygote)
        for side in (ours, theirs):
            m = side.daemon_mem()
            b.sample("daemon RSS after the runs (with helper processes)", side, m["rss"] / 1024)
            b.extra.setdefault("daemon_after_runs", {})[side.name] = m

        for r in range(rounds):
            for side in ((ours, theirs) if r % 2 == 0 else (theirs, ours)):
                parallel_round(b, img, side, args.parallel)

        b.row_from_samples("daemon RSS idle", "MiB")
        b.row_from_samples("daemon RSS after the runs (with helper processes)", "MiB",
                           note="ours: + the shim zygote, started on first use")
        b.row_from_samples("ctr version (floor)", "s")
        b.row_from_samples("ctr run --rm busybox true", "s")
        if nozygote is not None:
            s = b.samples["ctr run --rm busybox true"]
            b.row("ctr run --rm busybox true, ours without the shim zygote", "s",
                  statistics.median(s["ours, no zygote"]), statistics.median(s["containerd"]),
                  f"PYCONTAINERD_SHIM_ZYGOTE=0; median of {len(s['ours, no zygote'])}")
        b.row_from_samples(f"{args.parallel} × ctr run -d … sleep → all RUNNING", "s")
        b.row_from_samples(f"SIGKILL + delete {args.parallel} running containers", "s")
        for fig in ("memory per running container (shim RSS + daemon growth)",
                    "memory per running container (shim PSS + daemon PSS growth)",
                    "shim RSS per container", "shim PSS per container", "shim USS per container",
                    "daemon RSS growth per container"):
            b.row_from_samples(fig, "MiB")
        s = b.samples["ctr run --rm busybox true"]
        for side in ("ours", "containerd"):
            b.extra.setdefault("run_rm_summary", {})[side] = summarize(s.get(side, []))
        b.report()


if __name__ == "__main__":
    main()
