"""Benchmark: the task calls alone (the runtime path: shim start, runc), side by side.

    python bench/tasks.py            # 30 containers per daemon
    python bench/tasks.py --quick    # 10

``ctr run --rm`` spends most of its time outside the runtime (content, snapshots,
containers, leases calls); this isolates the part a shim and runc make: for a container
made with ``ctr containers create`` (untimed), one gRPC client (Python's grpcio, the same
for both daemons) times ``Tasks.Create`` (bundle, shim start, ``runc create``),
``Tasks.Start`` (``runc start``), the ``Wait`` of ``true`` after Start, and
``Tasks.Delete`` (``runc delete``, shim shutdown, bundle removal).
"""

from __future__ import annotations

import time

import grpc
from harness import Bench, Side, base_parser

FIGURES = ("Tasks.Create", "Tasks.Start", "Tasks.Wait after Start", "Tasks.Delete", "sum of the four")


def one(b: Bench, side: Side, img: str) -> None:
    from pycontainerd.api.services.snapshots.v1 import snapshots_pb2 as spb
    from pycontainerd.api.services.snapshots.v1 import snapshots_pb2_grpc
    from pycontainerd.api.services.tasks.v1 import tasks_pb2 as pb
    from pycontainerd.api.services.tasks.v1 import tasks_pb2_grpc

    cid = b.new_id("t")
    side.ctr("containers", "create", img, cid, "true")
    md = [("containerd-namespace", side.namespace)]
    with grpc.insecure_channel(f"unix:{side.address}") as ch:
        tasks = tasks_pb2_grpc.TasksStub(ch)
        mounts = snapshots_pb2_grpc.SnapshotsStub(ch).Mounts(
            spb.MountsRequest(snapshotter="overlayfs", key=cid), metadata=md).mounts
        t0 = time.perf_counter()
        tasks.Create(pb.CreateTaskRequest(container_id=cid, rootfs=mounts), metadata=md)
        t1 = time.perf_counter()
        wait = tasks.Wait.future(pb.WaitRequest(container_id=cid), metadata=md)
        time.sleep(0.01)  # the Wait is parked in the daemon before the start
        t2 = time.perf_counter()
        tasks.Start(pb.StartRequest(container_id=cid), metadata=md)
        t3 = time.perf_counter()
        wait.result(timeout=30)
        t4 = time.perf_counter()
        tasks.Delete(pb.DeleteTaskRequest(container_id=cid), metadata=md)
        t5 = time.perf_counter()
    side.ctr("containers", "rm", cid)
    parts = (t1 - t0, t3 - t2, t4 - t3, t5 - t4)
    for fig, v in zip(FIGURES, (*parts, sum(parts))):
        b.sample(fig, side, v)


def main() -> None:
    ap = base_parser(__doc__)
    ap.add_argument("--runs", type=int, help="containers per daemon (default 30, quick 10)")
    args = ap.parse_args()
    runs = args.runs or (10 if args.quick else 30)
    with Bench("tasks", args) as b:
        img = b.busybox()
        ours, theirs = b.start_both()
        for side in (ours, theirs):
            side.ctr("images", "pull", "--plain-http", img)
            one(b, side, img)  # warm-up (our shim zygote starts here)
        b.samples.clear()
        for _, side in b.alternate(ours, theirs, runs):
            one(b, side, img)
        for fig in FIGURES:
            b.row_from_samples(fig, "s")
        b.report()


if __name__ == "__main__":
    main()
