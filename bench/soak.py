"""Soak: N × ``ctr run --rm busybox true``, pycontainerd and Debian containerd side by side.

    python bench/soak.py                     # 1000 cycles per daemon, a sample every 50
    python bench/soak.py --cycles 200 --every 25
    python bench/soak.py --quick             # 100 cycles, a sample every 25
    python bench/soak.py --only ours         # one daemon (ours | containerd)

Cycles run in blocks of ``--every``, alternating the daemons block by block in ABBA
order (so drift of the machine hits both alike). After each block, per daemon:

- daemon RSS (KiB, the daemon plus helpers in its session: our shim zygote), and the
  daemon process's own RssAnon (heap) apart from RssFile (mapped files: LMDB, libraries),
- open fds of the daemon process (``/proc/PID/fd``),
- mounts: lines of ``/proc/self/mountinfo`` under that daemon's temp dir (and the whole
  table, kept in the JSON only: other processes on the machine move it),
- shims: processes left whose command line or cwd is under that daemon's dir (with
  ``--rm`` there must be none between cycles).

Growth per 100 cycles is the least-squares slope of the samples after the first block
(the first block warms caches, pools, the zygote) × 100; the table also gives the first
and last values. A figure that grows steadily is a leak to explain. Failed cycles are
counted (must be 0).
"""

from __future__ import annotations

import os
import time

from harness import Bench, Row, Side, base_parser, cmdline, descendants, sid


class GrowthRow(Row):
    """A slope: near zero on both sides it is noise, so no ratio is shown for it."""

    @property
    def ratio(self) -> float | None:
        return None


def fd_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def mount_lines(under: str | None = None) -> int:
    with open("/proc/self/mountinfo") as f:
        if under is None:
            return sum(1 for _ in f)
        return sum(1 for ln in f if ln.split()[4].startswith(under + "/"))


def helper_pids(side: Side) -> set[int]:
    """The daemon and the helpers in its own session (not shims: those ``setsid``)."""
    if not side.pid:
        return set()
    session = sid(side.pid)
    return {side.pid, *(p for p in descendants(side.pid) if sid(p) == session)}


def shim_count(side: Side) -> int:
    """Processes under the daemon's dir (cmdline or cwd) that are not the daemon or its helpers."""
    needle = str(side.base)
    skip = helper_pids(side) | {os.getpid()}
    n = 0
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) in skip:
            continue
        pid = int(d)
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            cwd = ""
        if cwd.startswith(needle + "/") or any(needle in a for a in cmdline(pid)):
            n += 1
    return n


def rss_split(pid: int) -> dict[str, int]:
    """``RssAnon``/``RssFile`` of the daemon process (KiB): heap growth shows in the first,
    mapped files (LMDB's data file, libraries) in the second."""
    out = {"rss_anon_kib": 0, "rss_file_kib": 0}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("RssAnon:", "RssFile:")):
                    key = "rss_anon_kib" if line.startswith("RssAnon") else "rss_file_kib"
                    out[key] = int(line.split()[1])
    except OSError:
        pass
    return out


def snapshot(side: Side) -> dict[str, float]:
    return {"rss_kib": side.daemon_mem()["rss"], **rss_split(side.pid), "fds": fd_count(side.pid),
            "mounts": mount_lines(str(side.base)), "mounts_host": mount_lines(), "shims": shim_count(side)}


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope dy/dx (0 with fewer than two points)."""
    if len(xs) < 2:
        return 0.0
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0


FIGURES = [  # (key, label, unit, scale from the sampled unit)
    ("rss_kib", "daemon RSS", "MiB", 1 / 1024),
    ("rss_anon_kib", "daemon process RssAnon", "MiB", 1 / 1024),
    ("fds", "daemon open fds", "fds", 1),
    ("mounts", "mounts under its root", "mounts", 1),
    ("shims", "shims left", "procs", 1),
]


def main() -> None:
    ap = base_parser(__doc__)
    ap.add_argument("--cycles", type=int, default=None, help="run/rm cycles per daemon (default 1000, quick 100)")
    ap.add_argument("--every", type=int, default=None, help="sample every N cycles (default 50, quick 25)")
    ap.add_argument("--only", choices=["ours", "containerd"], help="soak one daemon only")
    args = ap.parse_args()
    cycles = args.cycles or (100 if args.quick else 1000)
    every = args.every or (25 if args.quick else 50)
    blocks = -(-cycles // every)
    with Bench("soak", args) as b:
        sides: list[Side] = []
        if args.only != "containerd":
            sides.append(b.start_ours())
        if args.only != "ours":
            sides.append(b.start_containerd())
        img = b.busybox()
        for side in sides:
            side.ctr("images", "pull", "--plain-http", img)
            side.ctr("run", "--rm", img, b.new_id("warm"), "true")  # first run: snapshot, shim path warm
        series: dict[str, list[tuple[int, dict]]] = {s.name: [(0, snapshot(s))] for s in sides}
        failures: dict[str, list[str]] = {s.name: [] for s in sides}
        done = {s.name: 0 for s in sides}
        order = list(Bench.alternate(*sides, blocks)) if len(sides) == 2 else [(i, sides[0]) for i in range(blocks)]
        t_start = time.monotonic()
        for _block, side in order:
            n = min(every, cycles - done[side.name])
            for _ in range(n):
                t0 = time.perf_counter()
                p = side.ctr("run", "--rm", img, b.new_id("soak"), "true", check=False, timeout=120)
                b.sample("cycle time", side, time.perf_counter() - t0)
                if p.returncode != 0:
                    failures[side.name].append(p.stderr.decode(errors="replace").strip()[-300:])
            done[side.name] += n
            snap = snapshot(side)
            series[side.name].append((done[side.name], snap))
            print(f"[{side.name}] {done[side.name]:5d} cycles  rss {snap['rss_kib'] / 1024:7.1f} MiB "
                  f"(anon {snap['rss_anon_kib'] / 1024:.1f}, file {snap['rss_file_kib'] / 1024:.1f})  "
                  f"fds {snap['fds']:4d}  mounts {snap['mounts']:3d} (host {snap['mounts_host']})  "
                  f"shims {snap['shims']}  failed {len(failures[side.name])}  "
                  f"({time.monotonic() - t_start:.0f} s)", flush=True)

        def growth(name: str, key: str, scale: float) -> float | None:
            if name not in series:
                return None
            pts = series[name][1:] if len(series[name]) > 2 else series[name]
            return slope([c for c, _ in pts], [s[key] * scale for _, s in pts]) * 100

        def at(name: str, idx: int, key: str, scale: float) -> str:
            return f"{series[name][idx][1][key] * scale:.1f}" if name in series else "—"

        for key, label, unit, scale in FIGURES:
            note = "; ".join(f"{n}: {at(n, 0, key, scale)} → {at(n, 1, key, scale)} → {at(n, -1, key, scale)}"
                             for n in ("ours", "containerd") if n in series)
            b.rows.append(GrowthRow(f"{label} growth /100 cycles", unit, growth("ours", key, scale),
                                    growth("containerd", key, scale), note=f"start → after 1st block → end: {note}"))
        for key, label, unit, scale in FIGURES:
            b.row(f"{label} at end", unit,
                  series["ours"][-1][1][key] * scale if "ours" in series else None,
                  series["containerd"][-1][1][key] * scale if "containerd" in series else None)
        b.row_from_samples("cycle time", "s", note=f"ctr run --rm busybox true, {cycles} cycles")
        b.row("failed cycles", "cycles", len(failures["ours"]) if "ours" in failures else None,
              len(failures["containerd"]) if "containerd" in failures else None)
        b.extra["series"] = {n: [{"cycles": c, **s} for c, s in pts] for n, pts in series.items()}
        b.extra["failures"] = {n: f[:20] for n, f in failures.items()}
        b.extra["cycles"] = cycles
        b.extra["every"] = every
        b.report()


if __name__ == "__main__":
    main()
