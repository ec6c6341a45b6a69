"""Benchmark: restarting a daemon that has running containers, pycontainerd vs containerd.

    python bench/restart.py            # 30 running containers, 6 restarts per daemon
    python bench/restart.py --quick    # 30 running containers, 2 restarts per daemon

Each daemon gets ``--containers`` (30) busybox ``sleep`` tasks (``ctr run -d``), then, in
ABBA order, is stopped with SIGTERM (its containers keep running) and started again on the
same root and state. Figures, through Debian's ``ctr``:

- SIGTERM → exited: until the daemon process is gone;
- start → all RUNNING: from starting the daemon until ``ctr tasks ls`` lists every task
  RUNNING with the pid it had (the daemon reconnected every shim). Issue 15 asks for at
  most 5 s for 30 tasks; the ratio to containerd is the figure that means something here.

A task that is not RUNNING with its old pid after a restart makes the script fail.
"""

from __future__ import annotations

import signal
import subprocess
import time

from harness import Bench, Side, base_parser, run_parallel


def _sigterm(side: Side) -> float:
    """SIGTERM the daemon and wait for it, without the helpers' cleanup (the tasks stay)."""
    proc = side.handle.proc
    t0 = time.perf_counter()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"[{side.name}] did not exit within 60 s of SIGTERM") from exc
    elapsed = time.perf_counter() - t0
    side.handle.proc = None
    return elapsed


def _until_all_running(side: Side, pids: dict[str, int], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            now = side.task_pids()
            status = side.task_status()
        except RuntimeError:  # the socket is there but not every service answers yet
            now, status = {}, {}
        if all(status.get(i) == "RUNNING" and now.get(i) == p for i, p in pids.items()):
            return
        if time.monotonic() > deadline:
            lost = sorted(i for i, p in pids.items() if status.get(i) != "RUNNING" or now.get(i) != p)
            raise RuntimeError(f"[{side.name}] after a restart, not RUNNING with their pid: {lost[:5]}")
        time.sleep(0.01)


def main() -> None:
    ap = base_parser(__doc__)
    ap.add_argument("--containers", type=int, default=30)
    ap.add_argument("--restarts", type=int, default=0, help="per daemon (default 6, --quick 2)")
    args = ap.parse_args()
    restarts = args.restarts or (2 if args.quick else 6)
    with Bench("restart", args) as b:
        ours, theirs = b.start_both()
        img = b.busybox()
        pids: dict[str, dict[str, int]] = {}
        for side in (ours, theirs):
            side.ctr("images", "pull", "--plain-http", img)
            ids = [b.new_id("s") for _ in range(args.containers)]
            _, results = run_parallel([side.argv("run", "-d", img, i, "sleep", "100000") for i in ids],
                                      env=side.env())
            bad = [r for r in results if r.returncode != 0]
            if bad:
                raise RuntimeError(f"[{side.name}] ctr run -d failed: {bad[0].stderr.decode(errors='replace')[-1000:]}")
            have = side.task_pids()
            pids[side.name] = {i: have[i] for i in ids}
            _until_all_running(side, pids[side.name])
        for _, side in b.alternate(ours, theirs, restarts):
            b.sample("SIGTERM → exited", side, _sigterm(side))
            t0 = time.perf_counter()
            side.handle.start(timeout=120)
            _until_all_running(side, pids[side.name])
            b.sample(f"start → {args.containers} tasks RUNNING", side, time.perf_counter() - t0)
        b.row_from_samples("SIGTERM → exited")
        b.row_from_samples(f"start → {args.containers} tasks RUNNING")
        b.report()


if __name__ == "__main__":
    main()
