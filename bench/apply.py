"""Benchmark: pycontainerd's apply_layer against ``tar -xzf`` + ``sync`` on the same layer.

    python bench/apply.py                      # generate a ~50 MiB mixed layer, 3 rounds
    python bench/apply.py --layer some.tar.gz  # use an existing gzip layer
    python bench/apply.py --from-dir /usr/share/doc   # a layer of real files (GNU tar -czf)
    python bench/apply.py --rounds 5 --warm    # also warm-cache runs without sync

Each round extracts into a fresh directory on the same filesystem (``--workdir``), both
tools in alternating order. "cold" drops the page cache first (``/proc/sys/vm/drop_caches``,
root only; reported as "warm" when that is not possible) and includes making the data
durable: ``syncfs`` inside apply_layer, ``sync -f`` after tar. "warm" (``--warm``) reads a
cached layer and skips the sync. Prints medians and the ratio ours / tar (below 1 = faster).
No assertions: figures only (DESIGN.md §7).
"""

from __future__ import annotations

import argparse
import io
import os
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pycontainerd import log  # noqa: E402
from pycontainerd.archive import apply_layer  # noqa: E402
from pycontainerd.archive.compression import Compression, compress_stream  # noqa: E402

WORDS = [bytes(random.Random(i).choices(range(97, 123), k=random.Random(i).randint(2, 10))) for i in range(4000)]


def _content(rng: random.Random, size: int) -> bytes:
    """Text-like, compressible about 3:1, like binaries and docs in a distro layer."""
    if rng.random() < 0.2:
        return rng.randbytes(size)
    out = bytearray()
    while len(out) < size:
        out += b" ".join(rng.choices(WORDS, k=64)) + b"\n"
    return bytes(out[:size])


def generate(path: str, total_mib: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    raw = open(path, "wb")
    comp = compress_stream(raw, Compression.GZIP)
    tf = tarfile.open(fileobj=comp, mode="w|", format=tarfile.PAX_FORMAT)  # type: ignore[arg-type]
    budget = total_mib << 20
    dirs = [""]
    n = 0
    while budget > 0:
        if rng.random() < 0.03 or len(dirs) < 20:
            parent = rng.choice(dirs)
            d = f"{parent}d{len(dirs)}/"
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            info.mtime = 1_600_000_000
            tf.addfile(info)
            dirs.append(d)
        r = rng.random()
        size = (rng.randint(0, 12 << 10) if r < 0.97 else rng.randint(16 << 10, 256 << 10) if r < 0.999
                else rng.randint(2 << 20, 6 << 20))
        size = min(size, budget)
        info = tarfile.TarInfo(f"{rng.choice(dirs)}f{n}")
        info.size = size
        info.mode = rng.choice([0o644, 0o755, 0o600])
        info.mtime = 1_600_000_000 + n
        tf.addfile(info, io.BytesIO(_content(rng, size)))
        if rng.random() < 0.05:
            link = tarfile.TarInfo(f"{rng.choice(dirs)}s{n}")
            link.type = tarfile.SYMTYPE
            link.linkname = f"../f{n}"
            tf.addfile(link)
        budget -= size
        n += 1
    tf.close()
    comp.close()
    raw.close()


def drop_caches() -> bool:
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def run_ours(layer: str, target: str, sync: bool) -> float:
    t0 = time.perf_counter()
    with open(layer, "rb") as f:
        apply_layer(f, target, overlay_whiteouts=False, media_type="application/vnd.oci.image.layer.v1.tar+gzip",
                    sync=sync)
    return time.perf_counter() - t0


def run_tar(layer: str, target: str, sync: bool) -> float:
    t0 = time.perf_counter()
    subprocess.run(["tar", "--numeric-owner", "-xzf", layer, "-C", target], check=True)
    if sync:
        subprocess.run(["sync", "-f", target], check=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layer", help="an existing .tar.gz layer (default: generate one)")
    ap.add_argument("--from-dir", help="make the layer from this directory with tar -czf")
    ap.add_argument("--size-mib", type=int, default=50, help="uncompressed size of the generated layer")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workdir", default="/var/tmp", help="where to extract (same disk as real snapshots)")
    ap.add_argument("--warm", action="store_true", help="also run warm-cache, no-sync rounds")
    args = ap.parse_args()
    log.configure("info")

    work = tempfile.mkdtemp(prefix="pcd-bench-apply-", dir=args.workdir)
    try:
        layer = args.layer
        if layer is None and args.from_dir:
            layer = os.path.join(work, "layer.tar.gz")
            subprocess.run(["tar", "--numeric-owner", "-C", args.from_dir, "-czf", layer, "."], check=True)
        elif layer is None:
            layer = os.path.join(work, "layer.tar.gz")
            t0 = time.perf_counter()
            generate(layer, args.size_mib)
            print(f"generated {layer} in {time.perf_counter() - t0:.1f}s")
        with tarfile.open(layer) as tf:
            members = tf.getmembers()
        usize = sum(m.size for m in members)
        print(f"layer: {os.path.getsize(layer) / 2**20:.1f} MiB gzip, {usize / 2**20:.1f} MiB of file data, "
              f"{len(members)} entries")

        modes = [("cold+sync", True, True)] + ([("warm, no sync", False, False)] if args.warm else [])
        for label, cold, sync in modes:
            times: dict[str, list[float]] = {"pycontainerd": [], "tar": []}
            dropped = True
            for r in range(args.rounds):
                order = [("pycontainerd", run_ours), ("tar", run_tar)]
                if r % 2:
                    order.reverse()
                for name, fn in order:
                    target = os.path.join(work, f"{name}-{r}")
                    os.mkdir(target)
                    if cold:
                        dropped = drop_caches() and dropped
                    else:
                        with open(layer, "rb") as f:  # make sure the blob is cached
                            while f.read(1 << 20):
                                pass
                    times[name].append(fn(layer, target, sync))
                    shutil.rmtree(target)
                    os.sync()
            ours, tar = statistics.median(times["pycontainerd"]), statistics.median(times["tar"])
            kind = label if dropped or not cold else label.replace("cold", "warm (drop_caches refused)")
            print(f"{kind:>16}: pycontainerd {ours:6.2f}s  tar -xzf {tar:6.2f}s  ratio {ours / tar:4.2f}"
                  f"   (runs: {', '.join(f'{t:.2f}' for t in times['pycontainerd'])} / "
                  f"{', '.join(f'{t:.2f}' for t in times['tar'])})")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
