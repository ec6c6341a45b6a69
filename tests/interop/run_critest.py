"""Run critest against pycontainerd or Debian's containerd through the interop test's harness.

    sudo .venv/bin/python -m tests.interop.run_critest --runtime containerd   # the reference
    sudo .venv/bin/python -m tests.interop.run_critest --runtime ours
    sudo .venv/bin/python -m tests.interop.run_critest --runtime ours -- -ginkgo.focus 'ALL capabilities'

Not a test: the reference run shows the harness reproduces containerd 1.6.20's published
result (91 passed, 3 failed, 48 skipped of 142; ../shared/cri-tools/README.md) on the same
config, images and network as tests/interop/test_critest.py gives pycontainerd. Prints the
summary and every failed spec with its message; ``--json`` writes the per-spec results.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

from tests.support.critest import cri_node, run_critest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runtime", choices=("ours", "containerd"), default="ours")
    ap.add_argument("--workdir", default="/var/tmp", help="where the node's temp base goes (a real disk)")
    ap.add_argument("--json", help="write every spec's result here")
    ap.add_argument("--log", help="write critest's output here as it runs")
    ap.add_argument("critest_args", nargs="*", help="extra critest / ginkgo flags (after --)")
    args = ap.parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix=f"critest-{args.runtime}-", dir=args.workdir))
    try:
        with cri_node(base / "node", args.runtime) as node:
            result = run_critest(node, *args.critest_args, log=Path(args.log) if args.log else None)
            print(result.describe(), flush=True)
            if args.json:
                Path(args.json).write_text(json.dumps({"runtime": args.runtime, "seconds": result.seconds,
                                                       "specs": [dataclasses.asdict(s) for s in result.specs]},
                                                      indent=1))
    finally:
        base.rmdir()
    return 0 if not result.failed else 1


if __name__ == "__main__":
    sys.exit(main())
