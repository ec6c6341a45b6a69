"""Benchmark: CRI latency per operation, measured by Kubernetes' own `critest -benchmark`.

    python bench/cri.py            # 2 rounds per side (ABBA), 30 pods / 30 containers / 10 images each
    python bench/cri.py --quick    # 1 round per side, 10 / 10 / 5

Both runtimes run as a CRI node of tests/support/critest.py, configured the same way (registry
mirrors to a registry holding critest's images, a CNI bridge network, restrict_oom_score_adj,
each in a network namespace of its own): pycontainerd, and Debian's containerd 1.6.20 with its
CRI plugin. critest's benchmark specs (cri-tools v1.37.0, serial: ``...NumberParallel: 1``)
time every CRI call of a pod lifecycle (CreatePod, StatusPod, StopPod, RemovePod), a container
lifecycle (CreateContainer … RemoveContainer), an image lifecycle (PullImage, StatusImage,
RemoveImage) and ListImages, and write them to ``*_benchmark_data.json``. Rounds of the two
sides alternate (ABBA); the table has each operation's median over every sample of every
round, ms, and the ratio ours / containerd.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from pathlib import Path

from harness import Bench, base_parser

from tests.support.critest import cri_node, critest_argv

ORDER = ["CreatePod", "StatusPod", "StopPod", "RemovePod", "CreateContainer", "StartContainer",
         "StatusContainer", "StopContainer", "RemoveContainer", "PullImage", "StatusImage", "RemoveImage",
         "ListImages"]


def params(n_pods: int, n_containers: int, n_images: int) -> str:
    return (f"podsNumber: {n_pods}\npodsNumberParallel: 1\npodBenchmarkTimeoutSeconds: 600\n"
            f"containersNumber: {n_containers}\ncontainersNumberParallel: 1\ncontainerBenchmarkTimeoutSeconds: 600\n"
            f"imagesNumber: {n_images}\nimagesNumberParallel: 1\nimageBenchmarkTimeoutSeconds: 600\n"
            "podContainerStartBenchmarkTimeoutSeconds: 600\n")


def one_round(b: Bench, node, round_no: int, params_file: Path) -> dict[str, list[float]]:
    """Run critest -benchmark once against ``node``; ``{operation: [ms, …]}``."""
    out = b.base / f"{node.kind}-round{round_no}"
    out.mkdir()
    images = out / "images.yaml"
    images.write_text("defaultTestContainerImage: localhost:5001/critest/busybox:1.35\n"
                      "webServerTestImage: localhost:5001/critest/nginx:latest\n")
    proc = subprocess.run(critest_argv(node, "-benchmark", "--test-images-file", str(images),
                                       "-benchmarking-params-file", str(params_file),
                                       "-benchmarking-output-dir", str(out), "-ginkgo.no-color"),
                          capture_output=True, text=True, timeout=3600, cwd=out)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-3000:]
        b.extra.setdefault("failures", []).append({"side": node.kind, "round": round_no, "output": tail})
        print(f"[{node.kind}] critest -benchmark exited {proc.returncode}:\n{tail}")
    samples: dict[str, list[float]] = {}
    for data in sorted(out.glob("*_benchmark_data.json")):
        result = json.loads(data.read_text())
        names = result["operationsNames"]
        for point in result.get("datapoints") or []:
            for name, ns in zip(names, point["operationsDurationsNs"], strict=False):
                if ns > 0:
                    samples.setdefault(name, []).append(ns / 1e6)
    return samples


def main() -> None:
    ap = base_parser(__doc__)
    ap.add_argument("--rounds", type=int, default=0, help="rounds per side (ABBA order)")
    args = ap.parse_args()
    with Bench("cri", args) as b:
        rounds = args.rounds or (1 if b.quick else 2)
        params_file = b.base / "params.yaml"
        params_file.write_text(params(10, 10, 5) if b.quick else params(30, 30, 10))
        with contextlib.ExitStack() as stack:
            ours = stack.enter_context(cri_node(b.base / "ours", "ours"))
            theirs = stack.enter_context(cri_node(b.base / "containerd", "containerd"))
            for i, node in b.alternate(ours, theirs, rounds):     # ABBA: drift cancels
                for op, values in one_round(b, node, i, params_file).items():
                    for v in values:
                        b.sample(op, node.kind, v)
        for op in sorted(b.samples, key=lambda o: ORDER.index(o) if o in ORDER else len(ORDER)):
            b.row_from_samples(op, "ms")
        b.extra["tool"] = "critest -benchmark (cri-tools v1.37.0), serial"
        b.report()


if __name__ == "__main__":
    main()
