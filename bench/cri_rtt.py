"""Benchmark: the round trip of one small CRI call from a Go client (what kubelet sends every
second per pod), on pycontainerd, on containerd 1.6.20's CRI plugin and on the floor.

    python bench/cri_rtt.py            # 6 rounds, 500 calls per method per round
    python bench/cri_rtt.py --quick    # 2 rounds, 200 calls

Both runtimes run as the CRI nodes of bench/cri.py (tests/support/critest.py), each with the
busybox image, one running pod and one running container in it. The **floor** is
bench/floor_server.py: a bare ``grpc.aio`` server (uvloop, one process) that answers every
method with the bytes containerd answered to the same request and does nothing else — what
any Python gRPC server costs before its own work. The client is ``tests/support/go/crirtt``
(grpc-go and the generated ``runtime.v1`` client, as kubelet and critest; built from the Go
module proxy by tests/support/gobuild.py): one call at a time on one connection. The three
servers take turns per round (rotating order); rows give each method's median over every
call, ours / containerd, with the floor's median and floor / containerd in the note.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import subprocess

import grpc
from harness import Bench, base_parser
from reads import Floor, raw, run_loop

from pycontainerd.api.cri.runtime.v1 import api_pb2 as cri
from tests.support.cri import container_config, pod_config
from tests.support.critest import cri_node
from tests.support.gobuild import go_program

IMAGE = "localhost:5001/critest/busybox:1.35"
METHODS = ("Version", "ListImages", "ImageStatus", "ListPodSandbox", "PodSandboxStatus", "ListContainers",
           "ContainerStatus")
SERVICE = {"ListImages": "ImageService", "ImageStatus": "ImageService"}


def populate(node) -> dict[str, str]:
    """Busybox, a running pod and a running container; the ids crirtt's calls name."""
    c = node.client
    c.pull(IMAGE)
    pod = pod_config("rtt")
    sandbox = c.run_pod(pod)
    container = c.create(sandbox, container_config("rtt", IMAGE, command=["sleep", "3600"]), pod)
    c.start(container)
    return {"image": IMAGE, "sandbox": sandbox, "container": container}


def requests(ids: dict[str, str]) -> dict[str, bytes]:
    """Full method name → the request crirtt sends (for recording containerd's replies)."""
    bodies = {
        "Version": cri.VersionRequest(),
        "ListImages": cri.ListImagesRequest(),
        "ImageStatus": cri.ImageStatusRequest(image=cri.ImageSpec(image=ids["image"])),
        "ListPodSandbox": cri.ListPodSandboxRequest(),
        "PodSandboxStatus": cri.PodSandboxStatusRequest(pod_sandbox_id=ids["sandbox"]),
        "ListContainers": cri.ListContainersRequest(),
        "ContainerStatus": cri.ContainerStatusRequest(container_id=ids["container"]),
    }
    return {f"/runtime.v1.{SERVICE.get(m, 'RuntimeService')}/{m}": body.SerializeToString()
            for m, body in bodies.items()}


async def record_replies(address: str, reqs: dict[str, bytes]) -> dict[str, str]:
    async with grpc.aio.insecure_channel(f"unix:{address}") as ch:
        return {m: (await raw(ch, m)(body)).hex() for m, body in reqs.items()}


def rtt(binary: str, address: str, ids: dict[str, str], calls: int) -> dict[str, list[float]]:
    out = subprocess.run([binary, "-socket", address, "-n", str(calls), "-image", ids["image"],
                          "-sandbox", ids["sandbox"], "-container", ids["container"], *METHODS],
                         capture_output=True, text=True, timeout=600, check=True)
    return json.loads(out.stdout)


def main() -> None:
    ap = base_parser(__doc__)
    ap.add_argument("--rounds", type=int, default=0, help="rounds (each server once per round)")
    ap.add_argument("--calls", type=int, default=0, help="calls per method per round")
    args = ap.parse_args()
    with Bench("cri-rtt", args) as b:
        rounds = args.rounds or (2 if b.quick else 6)
        calls = args.calls or (200 if b.quick else 500)
        binary = go_program("crirtt")
        with contextlib.ExitStack() as stack:
            ours = stack.enter_context(cri_node(b.base / "ours", "ours"))
            theirs = stack.enter_context(cri_node(b.base / "containerd", "containerd"))
            ids = {"ours": populate(ours), "containerd": populate(theirs)}
            floor = Floor(b.base, run_loop(record_replies(theirs.address, requests(ids["containerd"]))))
            stack.callback(floor.stop)
            ids["floor"] = ids["containerd"]
            servers = [("ours", ours.address), ("containerd", theirs.address), ("floor", floor.address)]
            for i in range(rounds):
                for name, address in servers[i % 3:] + servers[:i % 3]:
                    for method, values in rtt(binary, address, ids[name], calls).items():
                        for v in values:
                            b.sample(method, name, v)
        for method in METHODS:
            fl = statistics.median(b.samples[method]["floor"])
            row = b.row_from_samples(method, "ms", note=f"floor {fl:.2f} ms")
            if row.containerd:
                row.note += f", floor/containerd {fl / row.containerd:.2f}"
        b.extra["client"] = "tests/support/go/crirtt (grpc-go, one call at a time)"
        b.report()


if __name__ == "__main__":
    main()
