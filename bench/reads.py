"""Read throughput against the number of clients, with a busy namespace: pycontainerd,
Debian's containerd and the floor (a bare grpc.aio server) in one run.

    python bench/reads.py                      # 1,000 containers; 1, 10, 50, 200 clients; 8 s a point
    python bench/reads.py --quick              # 200 containers; 1, 10, 50 clients; 3 s a point
    python bench/reads.py --clients 50 --containers 50

Each daemon gets the busybox image and ``--containers`` container records (copies of one
``ctr containers create`` record: a real spec). Then, for each client count, ``N`` clients
(one gRPC channel each, on one uvloop loop in this process) loop for ``--seconds`` over
``Containers.List``, ``Images.List``, ``Containers.Get``, ``Images.Get``, ``Version`` with
pre-serialized requests, and do not decode the replies (the client costs the same against
every server). Reported per client count: reads/s and p50/p99 of all calls, ours /
containerd; and each daemon's reads/s as a fraction of the floor's (:mod:`floor_server`,
which sends containerd's recorded replies to the same requests, doing nothing else). The
servers are measured in turn, ABBA order per point. Errors must be 0.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import grpc
from harness import REPO, Bench, base_parser, percentile

from pycontainerd.api.services.containers.v1 import containers_pb2
from pycontainerd.api.services.images.v1 import images_pb2

HERE = Path(__file__).resolve().parent
NAMESPACE = "default"
MD = (("containerd-namespace", NAMESPACE),)
CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 256 << 20), ("grpc.max_send_message_length", 256 << 20)]
FIXED = "reads-fixed"


def requests(image: str) -> dict[str, bytes]:
    """Full method name → the serialized request the load sends."""
    return {
        "/containerd.services.containers.v1.Containers/List": b"",
        "/containerd.services.images.v1.Images/List": b"",
        "/containerd.services.containers.v1.Containers/Get":
            containers_pb2.GetContainerRequest(id=FIXED).SerializeToString(),
        "/containerd.services.images.v1.Images/Get": images_pb2.GetImageRequest(name=image).SerializeToString(),
        "/containerd.services.version.v1.Version/Version": b"",
    }


def raw(channel: grpc.aio.Channel, method: str):
    return channel.unary_unary(method, request_serializer=None, response_deserializer=None)


async def populate(address: str, count: int, template_id: str = FIXED, prefix: str = "reads-", start: int = 0,
                   namespace: str = NAMESPACE) -> None:
    """``count`` container records copied from ``template_id`` (a real one, with its spec),
    ids ``<prefix><start>`` …, without a snapshot of their own: what a listing returns."""
    md = (("containerd-namespace", namespace),)
    async with grpc.aio.insecure_channel(f"unix:{address}", options=CHANNEL_OPTIONS) as ch:
        get = ch.unary_unary("/containerd.services.containers.v1.Containers/Get",
                             request_serializer=containers_pb2.GetContainerRequest.SerializeToString,
                             response_deserializer=containers_pb2.GetContainerResponse.FromString)
        create = ch.unary_unary("/containerd.services.containers.v1.Containers/Create",
                                request_serializer=containers_pb2.CreateContainerRequest.SerializeToString,
                                response_deserializer=containers_pb2.CreateContainerResponse.FromString)
        template = (await get(containers_pb2.GetContainerRequest(id=template_id), metadata=md)).container
        template.ClearField("created_at")
        template.ClearField("updated_at")
        template.snapshot_key = ""
        template.snapshotter = ""
        sem = asyncio.Semaphore(8)

        async def one(i: int) -> None:
            c = containers_pb2.Container()
            c.CopyFrom(template)
            c.id = f"{prefix}{i:05d}"
            async with sem:
                await create(containers_pb2.CreateContainerRequest(container=c), metadata=md)

        await asyncio.gather(*(one(i) for i in range(start, start + count)))


async def record_replies(address: str, reqs: dict[str, bytes]) -> dict[str, str]:
    async with grpc.aio.insecure_channel(f"unix:{address}", options=CHANNEL_OPTIONS) as ch:
        return {m: (await raw(ch, m)(body, metadata=MD)).hex() for m, body in reqs.items()}


async def load(address: str, reqs: dict[str, bytes], clients: int, seconds: float) -> dict:
    """``clients`` channels calling in a loop for ``seconds``; calls finished in the window."""
    methods = list(reqs)
    chans = [grpc.aio.insecure_channel(f"unix:{address}", options=CHANNEL_OPTIONS) for _ in range(clients)]
    latencies: list[float] = []
    errors: list[str] = []
    try:
        for ch in chans:  # connected before the clock starts
            await raw(ch, methods[-1])(reqs[methods[-1]], metadata=MD)
        t_end = time.perf_counter() + seconds

        async def client(i: int, ch: grpc.aio.Channel) -> None:
            rnd = random.Random(i)
            stubs = {m: raw(ch, m) for m in methods}
            while True:
                m = rnd.choice(methods)
                t0 = time.perf_counter()
                if t0 >= t_end:
                    return
                try:
                    await stubs[m](reqs[m], metadata=MD, timeout=60)
                except grpc.RpcError as exc:
                    errors.append(f"{m}: {exc.code()} {exc.details()}")
                    await asyncio.sleep(0.05)
                    continue
                t1 = time.perf_counter()
                if t1 <= t_end:
                    latencies.append(t1 - t0)

        t0 = time.perf_counter()
        await asyncio.gather(*(client(i, ch) for i, ch in enumerate(chans)))
        took = min(time.perf_counter(), t_end) - t0
    finally:
        for ch in chans:
            await ch.close()
    return {"reads": len(latencies), "reads_per_s": len(latencies) / took, "p50": percentile(latencies, 50),
            "p99": percentile(latencies, 99), "errors": errors}


def run_loop(coro):
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


class Floor:
    """bench/floor_server.py in its own process."""

    def __init__(self, base: Path, replies: dict[str, str]) -> None:
        self.name = "floor"
        self.address = str(base / "floor.sock")
        (base / "floor-replies.json").write_text(json.dumps(replies))
        self.proc = subprocess.Popen([sys.executable, str(HERE / "floor_server.py"), "--socket", self.address,
                                      "--replies", str(base / "floor-replies.json")], stdout=subprocess.PIPE)
        line = self.proc.stdout.readline()
        if b"serving" not in line:
            raise RuntimeError("the floor server did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def main() -> None:
    ap = base_parser(__doc__)
    ap.add_argument("--containers", type=int, help="container records in the namespace (default 1000, quick 200)")
    ap.add_argument("--clients", help="comma-separated client counts (default 1,10,50,200; quick 1,10,50)")
    ap.add_argument("--seconds", type=float, help="length of each measurement (default 8, quick 3)")
    ap.add_argument("--rounds", type=int, default=1, help="ABBA rounds per point")
    ap.add_argument("--no-floor", action="store_true", help="leave the bare grpc.aio server out")
    args = ap.parse_args()
    count = args.containers if args.containers is not None else (200 if args.quick else 1000)
    points = [int(x) for x in (args.clients or ("1,10,50" if args.quick else "1,10,50,200")).split(",")]
    seconds = args.seconds or (3.0 if args.quick else 8.0)
    failed = False
    floor = None
    with Bench("reads", args) as b:
        img = b.busybox()
        ours, theirs = b.start_both()
        for side in (ours, theirs):
            side.ctr("images", "pull", "--plain-http", img)
            side.ctr("containers", "create", img, FIXED)
            run_loop(populate(side.address, count))
        reqs = requests(img)
        try:
            if not args.no_floor:
                floor = Floor(b.base, run_loop(record_replies(theirs.address, reqs)))
            targets = [ours, theirs] + ([floor] if floor else [])
            results: dict[int, dict[str, list[dict]]] = {}
            for n in points:
                for rnd in range(args.rounds):
                    order = targets if rnd % 2 == 0 else targets[::-1]
                    for t in order:
                        r = run_loop(load(t.address, reqs, n, seconds))
                        results.setdefault(n, {}).setdefault(t.name, []).append(r)
                        failed |= bool(r["errors"])
                        print(f"[{t.name}] {n} clients: {r['reads_per_s']:.0f} reads/s, p50 "
                              f"{r['p50'] * 1000:.1f} ms, p99 {r['p99'] * 1000:.1f} ms, {len(r['errors'])} errors",
                              flush=True)
                        for e in r["errors"][:3]:
                            print(f"  error: {e}")
        finally:
            if floor is not None:
                floor.stop()
        for n in points:
            by = results[n]

            def med(name: str, key: str) -> float | None:
                xs = [r[key] for r in by.get(name, [])]
                return sorted(xs)[len(xs) // 2] if xs else None

            fl = med("floor", "reads_per_s")
            note = f"{count} containers; floor {fl:.0f}/s" if fl else f"{count} containers"
            b.row(f"reads/s, {n} clients", "ops/s", med("ours", "reads_per_s"), med("containerd", "reads_per_s"),
                  note, lower_is_better=False)
            b.row(f"p50 of a read, {n} clients", "ms", med("ours", "p50") * 1000, med("containerd", "p50") * 1000)
            b.row(f"p99 of a read, {n} clients", "ms", med("ours", "p99") * 1000, med("containerd", "p99") * 1000)
            if fl:
                b.row(f"reads/s as a fraction of the floor, {n} clients", "fraction", med("ours", "reads_per_s") / fl,
                      med("containerd", "reads_per_s") / fl, "a bare grpc.aio server: 1.0; higher=better", lower_is_better=False)
            errs = sum(len(r["errors"]) for rs in by.values() for r in rs)
            b.row(f"RPC errors, {n} clients", "count", sum(len(r["errors"]) for r in by.get("ours", [])),
                  sum(len(r["errors"]) for r in by.get("containerd", [])), f"must be 0 (floor included: {errs})")
        b.extra.update(containers=count, clients=points, seconds=seconds, rounds=args.rounds,
                       results={n: {k: [{**r, "errors": r["errors"][:10]} for r in v] for k, v in by.items()}
                                for n, by in results.items()}, pid=os.getpid(), repo=str(REPO))
        b.report()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
