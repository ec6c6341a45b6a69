"""Benchmark: the command line as a whole command, our ``pyctr`` vs Debian's ``ctr``.

    python bench/cli.py                       # 30 runs of each command per side
    python bench/cli.py --quick               # 10 runs
    python bench/cli.py --baseline /tmp/old   # also time the pyctr of another source tree

Each figure is the wall time of one process, start to exit: ``pyctr version``,
``pyctr images ls`` and ``pyctr containers ls`` against our daemon, ``ctr …`` of the same
command against containerd (one image pulled and ``--containers`` records in each), ABBA
interleaved, from cached bytecode (the warm-up runs write it). The interpreter's own start (``python -c pass``, the floor of every pyctr
figure) is reported alone. ``--baseline DIR`` runs the ``pycontainerd`` package of another
checkout (e.g. ``git archive main | tar -x -C DIR``) with this venv, against our daemon, in
the same rounds: before/after figures from one run.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from harness import CTR, REPO, Bench, Side, base_parser

PYCTR = REPO / ".venv" / "bin" / "pyctr"
PYTHON = REPO / ".venv" / "bin" / "python"
COMMANDS = (("version",), ("images", "ls"), ("containers", "ls"))


def timed(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       env=env, check=False)
    took = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {p.returncode}: {p.stderr.decode(errors='replace')[-1000:]}")
    return took


def client_argv(side: Side, command: tuple[str, ...]) -> list[str]:
    if side.name == "containerd":
        return side.argv(*command)
    return [str(PYCTR), "--address", side.address, "--namespace", side.namespace, *command]


def main() -> None:
    ap = base_parser(__doc__)
    ap.add_argument("--runs", type=int, help="runs of each command per side (default 30, quick 10)")
    ap.add_argument("--containers", type=int, default=20, help="container records in each daemon")
    ap.add_argument("--baseline", type=Path, help="a source tree whose pyctr is timed too (PYTHONPATH)")
    args = ap.parse_args()
    runs = args.runs or (10 if args.quick else 30)
    with Bench("cli", args) as b:
        img = b.busybox()
        ours, theirs = b.start_both()
        for side in (ours, theirs):
            side.ctr("images", "pull", "--plain-http", img)
            for _ in range(args.containers):
                side.ctr("containers", "create", img, b.new_id("cli"))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CONTAINERD_", "PYCONTAINERD_"))}
        env.pop("PYTHONPATH", None)
        # as installed: from cached bytecode (with PYTHONDONTWRITEBYTECODE set, as in some
        # shells here, every run compiles ~150 modules: ~1 s that no user pays)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        base_env = dict(env, PYTHONPATH=str(args.baseline.resolve())) if args.baseline else None
        for command in COMMANDS:  # warm the page cache and both daemons
            for side in (ours, theirs):
                timed(client_argv(side, command), env)
        for i, side in Bench.alternate(ours, theirs, runs):
            for command in COMMANDS:
                name = " ".join(command)
                b.sample(f"{name} (whole command)", side, timed(client_argv(side, command), env))
                if base_env is not None and side is ours:
                    b.sample(f"{name}, baseline tree", side, timed(client_argv(side, command), base_env))
            if side is ours:
                b.sample("python -c pass (interpreter start)", side, timed([str(PYTHON), "-c", "pass"], env))
        for command in COMMANDS:
            name = " ".join(command)
            b.row_from_samples(f"{name} (whole command)", "s", note="pyctr on ours, ctr on containerd")
            if base_env is not None:
                b.row_from_samples(f"{name}, baseline tree", "s", note=f"pyctr of {args.baseline}")
        b.row_from_samples("python -c pass (interpreter start)", "s", note="the floor of every pyctr figure")
        b.extra.update(ctr=CTR, pyctr=str(PYCTR), containers=args.containers, runs=runs,
                       baseline=str(args.baseline) if args.baseline else None)
        b.report()


if __name__ == "__main__":
    main()
