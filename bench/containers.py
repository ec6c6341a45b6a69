"""Benchmark: container records, pycontainerd vs Debian containerd.

    python bench/containers.py            # 200 containers per daemon, 30 × ls of 200 and of 2,000
    python bench/containers.py --quick    # 60 containers, 10 × ls of 60 and of 2,000

- ``ctr containers create IMG ID``, one after the other, alternating daemons (each
  creates the record and prepares its rootfs snapshot): time per container (median);
- ``ctr containers ls`` with that many records (median), then with ``--ls-sizes`` records
  (the rest copies of a created record, made through the API: a listing returns records).
"""

from __future__ import annotations

from harness import Bench, base_parser
from reads import populate, run_loop


def main() -> None:
    ap = base_parser(__doc__)
    ap.add_argument("--count", type=int, help="containers per daemon (default 200, quick 60)")
    ap.add_argument("--ls-runs", type=int, help="ctr containers ls repetitions (default 30, quick 10)")
    ap.add_argument("--ls-sizes", default="2000", help="further record counts to list (comma-separated)")
    args = ap.parse_args()
    count = args.count or (60 if args.quick else 200)
    ls_runs = args.ls_runs or (10 if args.quick else 30)

    with Bench("containers", args) as b:
        img = b.busybox()
        ours, theirs = b.start_both()
        for side in (ours, theirs):
            side.ctr("images", "pull", "--plain-http", img)
        for _, side in b.alternate(ours, theirs, count):
            b.sample("ctr containers create, per container", side,
                     side.timed_ctr("containers", "create", img, b.new_id("c")))
        for side in (ours, theirs):
            n = len(side.ctr("containers", "ls", "-q").stdout.split())
            b.extra.setdefault("records", {})[side.name] = n
        sizes = [count, *sorted(int(x) for x in args.ls_sizes.split(",") if x and int(x) > count)]
        for size in sizes:
            for side in (ours, theirs):
                ids = side.ctr("containers", "ls", "-q").stdout.decode().split()
                if size > len(ids):  # copies of a record ctr created, with its spec
                    run_loop(populate(side.address, size - len(ids), sorted(ids)[0], prefix=f"ls{size}-"))
            for _, side in b.alternate(ours, theirs, ls_runs):
                b.sample(f"ctr containers ls, {size} records", side, side.timed_ctr("containers", "ls"))
        b.row_from_samples("ctr containers create, per container", "s")
        for size in sizes:
            b.row_from_samples(f"ctr containers ls, {size} records", "s")
        b.report()


if __name__ == "__main__":
    main()
