"""Benchmark: the command line as a whole command, our ``pyctr`` vs Debian's ``ctr``.

    python bench/cli.py                       # 30 runs of each command per side
    python bench/cli.py --quick               # 10 runs
    python bench/cli.py --baseline /tmp/old   # also time the pyctr of another source tree

Each figure is the wall time of one process, start to exit: ``pyctr version``,
``pyctr images ls`` and ``pyctr containers ls`` against our daemon, ``ctr …`` of the same
command against containerd (one image pulled and ``--containers`` records in each), ABBA
interleaved, from cached bytecode (the warm-up runs write it); beside each, the CPU time
(user + system) of the same processes, which a machine shared with other work disturbs less
than wall time. Two floors are reported alone: the interpreter's start (``python -c
pass``), and a bare Python gRPC client (:data:`FLOOR`: click, asyncio, ``grpc.aio``,
protobuf and one Version call, nothing of pycontainerd but the generated stub) — what any
pyctr command costs at least while it is built on those. ``--baseline DIR`` runs the
``pycontainerd`` package of another checkout (e.g. ``git archive main | tar -x -C DIR``)
with this venv, against our daemon, in the same rounds: before/after figures from one run.
"""

from __future__ import annotations

import os
import resource
import subprocess
import time
from pathlib import Path

from harness import CTR, REPO, Bench, Side, base_parser

PYCTR = REPO / ".venv" / "bin" / "pyctr"
PYTHON = REPO / ".venv" / "bin" / "python"
COMMANDS = (("version",), ("images", "ls"), ("containers", "ls"))
FLOOR = """
import asyncio, sys
import click, grpc
from google.protobuf import empty_pb2
from pycontainerd.api.services.version.v1 import version_pb2_grpc

async def main(address):
    async with grpc.aio.insecure_channel("unix://" + address) as channel:
        reply = await version_pb2_grpc.VersionStub(channel).Version(empty_pb2.Empty())
    click.echo(reply.version)

asyncio.run(main(sys.argv[1]))
"""


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one process, seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       env=env, check=False, cwd="/")
    took = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {p.returncode}: {p.stderr.decode(errors='replace')[-1000:]}")
    return took, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


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
        def sample(figure: str, side: Side, argv: list[str], env: dict[str, str]) -> None:
            wall, cpu = timed(argv, env)
            b.sample(figure, side, wall)
            b.sample(f"{figure}, CPU", side, cpu)

        floors = {"python -c pass (interpreter start)": [str(PYTHON), "-c", "pass"],
                  "bare grpc.aio client, one call": [str(PYTHON), "-c", FLOOR, ours.address]}
        for i, side in Bench.alternate(ours, theirs, runs):
            for command in COMMANDS:
                name = " ".join(command)
                sample(f"{name} (whole command)", side, client_argv(side, command), env)
                if base_env is not None and side is ours:
                    sample(f"{name}, baseline tree", side, client_argv(side, command), base_env)
            if side is ours:
                for figure, argv in floors.items():
                    sample(figure, side, argv, env)
        for command in COMMANDS:
            name = " ".join(command)
            for cpu in ("", ", CPU"):
                b.row_from_samples(f"{name} (whole command){cpu}", "s", note="pyctr on ours, ctr on containerd")
                if base_env is not None:
                    b.row_from_samples(f"{name}, baseline tree{cpu}", "s", note=f"pyctr of {args.baseline}")
        for figure in floors:
            for cpu in ("", ", CPU"):
                b.row_from_samples(f"{figure}{cpu}", "s", note="a floor of every pyctr figure")
        b.extra.update(ctr=CTR, pyctr=str(PYCTR), containers=args.containers, runs=runs,
                       baseline=str(args.baseline) if args.baseline else None)
        b.report()


if __name__ == "__main__":
    main()
