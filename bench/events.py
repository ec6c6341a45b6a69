"""Benchmark: event delivery under concurrent writers, pycontainerd vs Debian containerd.

    python bench/events.py            # 400 events (4 writers × 100), 3 rounds per daemon
    python bench/events.py --quick    # 1 round

A subscriber (``ctr events 'topic=="/images/create"'``) runs while 4 writer threads each
run 100 × ``ctr images tag SRC NEW`` (every one an Images.Create → ``/images/create``).

- ops/s: 400 / (time from the first write until the last write returned *and* the last
  of the 400 events reached the subscriber);
- lag: when the subscriber read the event minus the envelope's timestamp (set by the
  daemon when it published), median and p90;
- delivered: how many of the 400 events the subscriber got (all must be).
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
import subprocess
import threading
import time

from harness import Bench, Side, base_parser, percentile

TOPIC_FILTER = 'topic=="/images/create"'


def parse_timestamp(date: str, clock: str, offset: str) -> float:
    """Go's ``time.Time.String()`` (``2006-01-02 15:04:05.999999999 -0700``) → epoch seconds."""
    whole, _, frac = clock.partition(".")
    t = dt.datetime.strptime(f"{date} {whole} {offset}", "%Y-%m-%d %H:%M:%S %z")
    return t.timestamp() + (float("0." + frac) if frac else 0.0)


class Subscriber:
    def __init__(self, side: Side) -> None:
        self.proc = subprocess.Popen(side.argv("events", TOPIC_FILTER), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=side.env())
        self.got: dict[str, tuple[float, float]] = {}  # image name -> (received, published)
        self.changed = threading.Condition()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            now = time.time()
            parts = raw.decode(errors="replace").rstrip("\n").split(" ", 6)
            if len(parts) < 7:
                continue
            try:
                published = parse_timestamp(parts[0], parts[1], parts[2])
                name = json.loads(parts[6]).get("name", "")
            except ValueError:
                continue
            with self.changed:
                self.got[name] = (now, published)
                self.changed.notify_all()

    def wait_for(self, names: set[str], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not names <= self.got.keys():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.changed.wait(left)
        return True

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def one_round(b: Bench, side: Side, src: str, writers: int, per_writer: int) -> None:
    sub = Subscriber(side)
    try:
        probe = f"{src}-probe-{b.new_id()}"
        deadline = time.monotonic() + 10
        while True:  # the subscription is live once a probe event arrives
            side.ctr("images", "tag", src, probe, "--force")
            if sub.wait_for({probe}, 0.5):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"[{side.name}] ctr events never saw an event: "
                                   f"{sub.proc.stderr.read1(4096) if sub.proc.poll() is not None else ''}")
        tag = b.new_id("ev")
        names = [[f"{src}-{tag}-w{w}-{i}" for i in range(per_writer)] for w in range(writers)]
        errors: list[str] = []

        def write(ws: list[str]) -> None:
            for n in ws:
                r = side.ctr("images", "tag", src, n, check=False)
                if r.returncode != 0:
                    errors.append(r.stderr.decode(errors="replace"))

        threads = [threading.Thread(target=write, args=(ws,)) for ws in names]
        t0 = time.time()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        writes_done = time.time()
        want = {n for ws in names for n in ws}
        sub.wait_for(want, 30)
        got = {n: sub.got[n] for n in want if n in sub.got}
        last = max([writes_done, *(r for r, _ in got.values())])
        total = writers * per_writer
        b.sample("ops/s", side, total / (last - t0))
        lags = [(r - p) * 1000 for r, p in got.values()]
        b.sample("lag median", side, statistics.median(lags) if lags else float("nan"))
        b.sample("lag p90", side, percentile(lags, 90) if lags else float("nan"))
        b.sample("delivered", side, len(got))
        if errors:
            b.extra.setdefault("errors", {}).setdefault(side.name, []).extend(errors[:5])
        # remove the tags again (one ctr call per 100)
        flat = sorted(want | {probe})
        for i in range(0, len(flat), 100):
            side.ctr("images", "rm", *flat[i:i + 100], check=False)
    finally:
        sub.close()


def main() -> None:
    ap = base_parser(__doc__)
    ap.add_argument("--rounds", type=int, help="rounds per daemon (default 3, quick 1)")
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument("--per-writer", type=int, default=100)
    args = ap.parse_args()
    rounds = args.rounds or (1 if args.quick else 3)

    with Bench("events", args) as b:
        img = b.busybox()
        ours, theirs = b.start_both()
        for side in (ours, theirs):
            side.ctr("images", "pull", "--plain-http", img)
        for _, side in b.alternate(ours, theirs, rounds):
            one_round(b, side, img, args.writers, args.per_writer)
        total = args.writers * args.per_writer
        r = b.row_from_samples("ops/s", "ops/s", note=f"{total} events, {args.writers} writers")
        r.figure = f"events: {total} image events under {args.writers} writers"
        r.lower_is_better = False
        b.row_from_samples("lag median", "ms")
        b.row_from_samples("lag p90", "ms")
        d = b.samples["delivered"]
        b.row("delivered (min over rounds)", "events", min(d.get("ours", [0])), min(d.get("containerd", [0])),
              f"of {total}")
        b.report()


if __name__ == "__main__":
    main()
