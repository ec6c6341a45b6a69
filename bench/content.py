"""Benchmark: reading a large blob out of the content store, pycontainerd vs containerd.

    python bench/content.py              # a 200 MiB blob, 10 × ctr content get per daemon
    python bench/content.py --quick      # 4 ×

The blob (random bytes, so nothing compresses) is ingested into both daemons with
``ctr content ingest`` and labelled as a GC root; then ``ctr content get DIGEST`` with its
output to ``/dev/null``, ABBA interleaved, page cache warm (the first read of each daemon
is a warm-up: it checks the bytes against the digest). Reported: time per get, and MiB/s.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time

from harness import MiB, Bench, base_parser


def main() -> None:
    ap = base_parser(__doc__)
    ap.add_argument("--size", type=int, default=200, help="MiB (default 200)")
    ap.add_argument("--runs", type=int, help="gets per daemon (default 10, quick 4)")
    args = ap.parse_args()
    runs = args.runs or (4 if args.quick else 10)
    size = args.size * MiB
    with Bench("content", args) as b:
        blob = b.base / "blob"
        digest = hashlib.sha256()
        with open(blob, "wb") as f:
            for _ in range(args.size):
                chunk = os.urandom(MiB)
                digest.update(chunk)
                f.write(chunk)
        dgst = f"sha256:{digest.hexdigest()}"
        ours, theirs = b.start_both()
        for side in (ours, theirs):
            side.ctr("content", "ingest", "--expected-size", str(size), "--expected-digest", dgst, "bench-blob",
                     input=blob.read_bytes())
            side.ctr("content", "label", dgst, "containerd.io/gc.root=bench")
            got = hashlib.sha256(side.ctr("content", "get", dgst).stdout).hexdigest()  # warm-up, and a check
            if f"sha256:{got}" != dgst:
                raise RuntimeError(f"[{side.name}] content get returned other bytes ({got})")
        for _, side in b.alternate(ours, theirs, runs):
            t0 = time.perf_counter()
            subprocess.run(side.argv("content", "get", dgst), stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                           env=side.env(), check=True)
            took = time.perf_counter() - t0
            b.sample(f"ctr content get, {args.size} MiB blob", side, took)
            b.sample(f"ctr content get throughput, {args.size} MiB", side, size / MiB / took)
        b.row_from_samples(f"ctr content get, {args.size} MiB blob", "s")
        b.row_from_samples(f"ctr content get throughput, {args.size} MiB", "MiB/s")
        b.extra.update(size=size, digest=dgst, runs=runs)
        b.report()


if __name__ == "__main__":
    main()
