"""The long mode of ``tests/reliability``: kill -9 of the daemon at random points, 50+ times.

Starts a local ``docker-registry``, pushes busybox and a three-layer image (the test
helpers in ``tests/support``), starts pycontainerd on temp dirs under ``--workdir`` and runs
:class:`tests.reliability.harness.FaultRunner`: each iteration starts one of pull, unpack,
container create, start, delete or garbage collection with Debian's ``ctr``, SIGKILLs the
daemon at a random point of it, restarts it, and runs the consistency checker
(``pyctr admin check``'s library) — which must find nothing — and checks that the
container started first still runs. Stops at the first problem (exit 1) with the seed to
replay it (``--seed`` or ``PYCONTAINERD_FAULT_SEED``).

Prints a summary: iterations, faults injected per phase, problems found, time. Root is
needed (mounts, runc)::

    sudo .venv/bin/python bench/faults.py --iterations 50
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from pycontainerd.mount import unmount_all  # noqa: E402
from pycontainerd.testing import Daemon, start_registry  # noqa: E402
from tests.reliability.harness import PHASES, SEED_ENV, FaultError, FaultRunner, seed_from_env  # noqa: E402
from tests.support.images import build_layered  # noqa: E402
from tests.support.registry import build_and_push_busybox  # noqa: E402


def _unmount_under(base: Path) -> None:
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f if line.split()[4].startswith(str(base) + "/")]
    for mp in reversed(points):
        try:
            unmount_all(mp)
        except OSError as exc:
            print(f"could not unmount {mp}: {exc}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iterations", type=int, default=int(os.environ.get("PYCONTAINERD_FAULT_ITERATIONS", "50")),
                    help="faults to inject (default 50, or $PYCONTAINERD_FAULT_ITERATIONS)")
    ap.add_argument("--seed", type=int, default=None, help=f"random seed (default ${SEED_ENV} or a fresh one)")
    ap.add_argument("--workdir", default="/var/tmp", help="where the temp dirs go (default /var/tmp)")
    args = ap.parse_args(argv)
    ctr_bin = shutil.which("ctr")
    if ctr_bin is None:
        print("Debian's ctr is needed: apt-get install containerd", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else seed_from_env()
    print(f"seed {seed} (replay: --seed {seed})", flush=True)
    base = Path(tempfile.mkdtemp(prefix="pcd-faults-", dir=args.workdir))
    registry = None
    daemon = None
    runner = None
    code = 0
    try:
        registry = start_registry()
        small = build_and_push_busybox(registry, base / "busybox").ref
        (base / "layered").mkdir()
        layered = build_layered(base / "layered", registry).ref
        daemon = Daemon(base=base / "daemon").start()
        runner = FaultRunner(daemon, ctr_bin, small, layered, seed, say=lambda s: print(s, flush=True))
        try:
            summary = runner.run(args.iterations)
        except FaultError as exc:
            print(f"FAILED: {exc}", file=sys.stderr)
            summary = runner.summary
            summary.problems = max(summary.problems, 1)
            code = 1
        print()
        print(f"{'iterations':<28}{summary.iterations:>8}")
        for phase in PHASES:
            print(f"{'faults during ' + phase:<28}{summary.faults[phase]:>8}")
        print(f"{'problems found':<28}{summary.problems:>8}")
        print(f"{'client deletes finished':<28}{summary.client_steps:>8}")
        print(f"{'time (s)':<28}{time.monotonic() - _START:>8.1f}")
        print(f"{'seed':<28}{seed:>8}")
        out = REPO / "bench" / "results" / f"faults-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps({"seed": seed, "iterations": summary.iterations, "faults": summary.faults,
                                   "problems": summary.problems,
                                   "client_deletes_finished": summary.client_steps, "phase_ms": {k: round(v * 1000) for k, v in
                                                                              summary.durations.items()},
                                   "seconds": round(time.monotonic() - _START, 1)}, indent=2))
        print(f"results: {out}")
    finally:
        if runner is not None and daemon is not None:
            try:
                runner.teardown()
            except Exception as exc:  # noqa: BLE001 — report, still clean up
                print(f"teardown: {exc}", file=sys.stderr)
        if daemon is not None:
            daemon.stop()
        _unmount_under(base)
        if registry is not None:
            registry.stop()
        shutil.rmtree(base, ignore_errors=True)
    return code


_START = time.monotonic()

if __name__ == "__main__":
    sys.exit(main())
