"""Benchmark: unpack alone, pycontainerd vs Debian containerd, and the disk floor.

    python bench/unpack.py            # the distro-like image, 3 rounds
    python bench/unpack.py --quick    # a small 2-layer image, 2 rounds

For every repetition each daemon starts fresh and fetches the image's content first
(``ctr content fetch``, untimed); then, with the page cache dropped, the timed
``ctr images pull --plain-http`` finds every blob present and only unpacks (Prepare →
Diff.Apply → Commit per layer into overlayfs snapshots; one manifest round trip to the
loopback registry remains).

The floor: GNU ``tar --numeric-owner -xzf`` of the same gzip layer blobs, each into its
own directory on the same disk, then ``sync -f`` — cold in the same way. Issue 4's goals:
ratio ≤ 1.0 against containerd, and ≤ 1.5 × the tar floor.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import time

from harness import Bench, base_parser, drop_caches


def unpack_once(b: Bench, factory, ref: str) -> None:
    side = factory()
    try:
        side.ctr("content", "fetch", "--plain-http", ref)
        drop_caches()
        b.sample("unpack (ctr images pull, content present)", side,
                 side.timed_ctr("images", "pull", "--plain-http", ref))
    finally:
        b.stop(side, remove_dirs=True)


def tar_floor(b: Bench, blobs: list[str]) -> None:
    target = b.base / f"tar-{b.new_id()}"
    target.mkdir()
    try:
        drop_caches()
        t0 = time.perf_counter()
        for i, blob in enumerate(blobs):
            d = target / str(i)
            d.mkdir()
            subprocess.run(["tar", "--numeric-owner", "-xzf", blob, "-C", str(d)], check=True)
        subprocess.run(["sync", "-f", str(target)], check=True)
        b.sample("unpack (ctr images pull, content present)", "tar -x + sync", time.perf_counter() - t0)
    finally:
        shutil.rmtree(target, ignore_errors=True)
        os.sync()


def main() -> None:
    ap = base_parser(__doc__)
    ap.add_argument("--rounds", type=int, help="repetitions per daemon (default 3, quick 2)")
    args = ap.parse_args()
    rounds = args.rounds or (2 if args.quick else 3)

    with Bench("unpack", args) as b:
        ref, desc = b.distro_image()
        print(f"image {ref}: {desc['summary']}")
        factories = [b.start_ours, b.start_containerd]
        for r in range(rounds):
            for factory in (factories if r % 2 == 0 else factories[::-1]):
                unpack_once(b, factory, ref)
            tar_floor(b, desc["layer_blobs"])
        fig = "unpack (ctr images pull, content present)"
        row = b.row_from_samples(fig, "s", note=desc["summary"])
        floor = statistics.median(b.samples[fig]["tar -x + sync"])
        b.row("GNU tar -x + sync of the same layers (floor)", "s", floor, None)
        if row.ours is not None:
            b.row("ours / tar floor", "×", row.ours / floor, None, "goal ≤ 1.5")
        if row.containerd is not None:
            b.row("containerd / tar floor", "×", row.containerd / floor, None)
        b.report()


if __name__ == "__main__":
    main()
