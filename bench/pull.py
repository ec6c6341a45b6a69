"""Benchmark: cold pull + unpack of a multi-layer image, pycontainerd vs Debian containerd.

    python bench/pull.py            # the distro-like image (see harness.build_distro_image), 3 rounds
    python bench/pull.py --quick    # a small 2-layer image, 2 rounds

Both daemons pull the same image from the same local ``docker-registry`` with
``ctr images pull --plain-http`` (fetch every blob, then unpack into overlayfs snapshots).
Cold = a fresh daemon with an empty ``--root`` for every repetition, and the page cache
dropped (``sync``; ``echo 3 > drop_caches``) just before the timed command. Rounds
alternate which daemon goes first.

Also the download-only figure: ``ctr content fetch --plain-http`` (blobs into the content
store and the image record, no unpack), cold in the same way.

This measures the ingest path (issue 3's goal: ratio ≤ 1.0; the network is loopback).
"""

from __future__ import annotations

from harness import Bench, base_parser, drop_caches


def cold(b: Bench, side_factory, figure: str, ref: str, *ctr_args: str) -> None:
    side = side_factory()
    try:
        dropped = drop_caches()
        b.sample(figure, side, side.timed_ctr(*ctr_args, "--plain-http", ref))
        b.extra.setdefault("page_cache_dropped", []).append(dropped)
        if figure.startswith("cold pull"):  # check the pull really unpacked
            out = side.ctr("snapshots", "ls").stdout.decode().strip().splitlines()
            b.extra.setdefault("snapshots_after_pull", {})[side.name] = len(out) - 1
    finally:
        b.stop(side, remove_dirs=True)


def main() -> None:
    ap = base_parser(__doc__)
    ap.add_argument("--rounds", type=int, help="repetitions per daemon (default 3, quick 2)")
    args = ap.parse_args()
    rounds = args.rounds or (2 if args.quick else 3)

    with Bench("pull", args) as b:
        ref, desc = b.distro_image()
        print(f"image {ref}: {desc['summary']}")
        factories = [("ours", b.start_ours), ("containerd", b.start_containerd)]
        for r in range(rounds):
            order = factories if r % 2 == 0 else factories[::-1]
            for _name, factory in order:
                cold(b, factory, "cold pull + unpack", ref, "images", "pull")
            for _name, factory in order:
                cold(b, factory, "download only (ctr content fetch)", ref, "content", "fetch")
        note = desc["summary"]
        b.row_from_samples("cold pull + unpack", "s", note=note)
        b.row_from_samples("download only (ctr content fetch)", "s")
        b.report()


if __name__ == "__main__":
    main()
