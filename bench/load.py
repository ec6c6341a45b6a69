"""Load: 50 concurrent clients reading and subscribed to events while containers start
and stop, pycontainerd and Debian containerd side by side.

    python bench/load.py                 # 50 clients, 40 containers cycled, 2 rounds per daemon (ABBA)
    python bench/load.py --quick         # 50 clients, 10 containers, 1 round
    python bench/load.py --clients 100 --containers 200

Every client is its own connection (:class:`pycontainerd.client.AsyncClient`, one gRPC
channel each; the library speaks containerd's API, so the same code drives both daemons),
all on one asyncio loop. Each client subscribes to the events of the namespace, then loops:
``Containers.List``, ``Images.List``, ``Containers.Get`` (a fixed container), ``Images.Get``,
``Version``, timing each call. Meanwhile a driver (a further client) cycles containers:
create container → create task → start → wait for the exit of ``true`` → delete task →
delete container, ``--parallel`` at a time.

Checked (a failure is reported, and makes the exit status 1): no RPC error in any client
or the driver, and every subscriber received, for every container the driver made, its
``/containers/create``, ``/tasks/start``, ``/tasks/exit`` and ``/containers/delete`` (of
the steps that succeeded: a failed step is counted as an error, not as lost events).
Reported: p50/p99 latency per RPC kind (ours, containerd, ratio), the driver's cycle time,
reads/s done by all clients together.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field

from harness import Bench, REPO, base_parser, percentile

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from pycontainerd.client import AsyncClient, with_process_args  # noqa: E402

TOPICS = ("/containers/create", "/tasks/start", "/tasks/exit", "/containers/delete")
KINDS = ("Containers.List", "Images.List", "Containers.Get", "Images.Get", "Version")


def _event_id(env) -> str:
    ev = env.event
    for attr in ("container_id", "id"):
        v = getattr(ev, attr, "")
        if v:
            return v
    return ""


@dataclass
class LoadResult:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))  # kind -> seconds
    errors: list[str] = field(default_factory=list)
    lost: dict[int, int] = field(default_factory=dict)  # subscriber -> missing events
    cycle_times: list[float] = field(default_factory=list)
    containers: list[str] = field(default_factory=list)
    duration: float = 0.0

    @property
    def reads(self) -> int:
        return sum(len(v) for v in self.latencies.values())


async def run_load(address: str, image: str, *, clients: int = 50, containers: int = 40, parallel: int = 2,
                   namespace: str = "default", prefix: str = "load", event_timeout: float = 60.0) -> LoadResult:
    """Drive one daemon at ``address``; ``image`` must be pulled (and unpacked) in
    ``namespace`` already. Returns what happened; raises only on setup failures."""
    res = LoadResult()
    stop = asyncio.Event()
    seen: list[set[tuple[str, str]]] = [set() for _ in range(clients)]
    expected: set[tuple[str, str]] = set()
    changed = asyncio.Condition()
    conns = [AsyncClient(address, namespace=namespace, timeout=60) for _ in range(clients + 1)]
    driver = conns[-1]
    fixed = f"{prefix}-fixed"
    await driver.new_container(fixed, image, with_process_args("true"))
    subs: list[asyncio.Task] = []
    readers: list[asyncio.Task] = []

    async def subscribe(i: int, c: AsyncClient) -> None:
        # one filter per topic, OR-ed, narrowed to the namespace (the daemon filters)
        filters = [f'namespace=={namespace},topic=="{t}"' for t in TOPICS]
        try:
            async for env in c.subscribe(*filters):
                eid = _event_id(env)
                if eid.startswith(prefix):
                    async with changed:
                        seen[i].add((env.topic, eid))
                        changed.notify_all()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a broken stream is an error of the run
            if not stop.is_set():
                res.errors.append(f"subscriber {i}: {type(exc).__name__}: {exc}")

    async def read(i: int, c: AsyncClient) -> None:
        rnd = random.Random(i)
        calls = {
            "Containers.List": lambda: c.list_containers(),
            "Images.List": lambda: c.list_images(),
            "Containers.Get": lambda: c.get_container(fixed),
            "Images.Get": lambda: c.get_image(image),
            "Version": lambda: c.version(),
        }
        while not stop.is_set():
            kind = rnd.choice(KINDS)
            t0 = time.perf_counter()
            try:
                await calls[kind]()
            except Exception as exc:
                res.errors.append(f"client {i} {kind}: {type(exc).__name__}: {exc}")
                await asyncio.sleep(0.05)
                continue
            res.latencies[kind].append(time.perf_counter() - t0)

    async def cycle(cid: str) -> None:
        """One container's life; the events its successful steps must have published go
        into ``expected`` (a failed step is an RPC error, not a lost event)."""
        t0 = time.perf_counter()
        ctr = task = None
        try:
            ctr = await driver.new_container(cid, image, with_process_args("true"))
            expected.add(("/containers/create", cid))
            task = await ctr.new_task()
            await task.start()
            expected.add(("/tasks/start", cid))
            await task.wait()
            expected.add(("/tasks/exit", cid))
            await task.delete()
            task = None
            await ctr.delete()
            expected.add(("/containers/delete", cid))
            res.cycle_times.append(time.perf_counter() - t0)
        except Exception as exc:
            res.errors.append(f"driver {cid}: {type(exc).__name__}: {exc}")
            try:  # leave nothing behind
                if task is not None:
                    with contextlib.suppress(Exception):
                        await task.kill("SIGKILL")
                        await task.wait()
                    await task.delete()
                if ctr is not None:
                    await ctr.delete()
                    expected.add(("/containers/delete", cid))
            except Exception as exc2:
                res.errors.append(f"driver cleanup {cid}: {type(exc2).__name__}: {exc2}")

    try:
        for i, c in enumerate(conns[:-1]):
            subs.append(asyncio.create_task(subscribe(i, c)))
        # the subscriptions are live once every subscriber has seen a probe's create
        for n in range(200):
            probe = f"{prefix}-probe-{n}"
            await (await driver.new_container(probe, image, with_process_args("true"))).delete()
            async with changed:
                try:
                    await asyncio.wait_for(changed.wait_for(
                        lambda: all(("/containers/create", probe) in s for s in seen)), 0.5)
                    break
                except asyncio.TimeoutError:
                    continue
        else:
            raise RuntimeError("the subscriptions never became live")
        for i, c in enumerate(conns[:-1]):
            readers.append(asyncio.create_task(read(i, c)))
        t0 = time.perf_counter()
        ids = [f"{prefix}-{k}" for k in range(containers)]
        res.containers = ids
        sem = asyncio.Semaphore(parallel)

        async def limited(cid: str) -> None:
            async with sem:
                await cycle(cid)

        await asyncio.gather(*(limited(cid) for cid in ids))
        want = set(expected)
        async with changed:
            try:
                await asyncio.wait_for(changed.wait_for(lambda: all(want <= s for s in seen)), event_timeout)
            except asyncio.TimeoutError:
                pass
        res.duration = time.perf_counter() - t0
        res.lost = {i: len(want - s) for i, s in enumerate(seen) if want - s}
    finally:
        stop.set()
        for t in readers + subs:
            t.cancel()
        await asyncio.gather(*readers, *subs, return_exceptions=True)
        try:  # with its snapshot, as ctr containers rm does
            await (await driver.load_container(fixed)).delete()
        except Exception as exc:
            res.errors.append(f"driver cleanup {fixed}: {type(exc).__name__}: {exc}")
        for c in conns:
            await c.close()
    return res


def main() -> None:
    ap = base_parser(__doc__)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--containers", type=int, default=None, help="containers cycled per round (default 40, quick 10)")
    ap.add_argument("--parallel", type=int, default=2, help="containers the driver cycles at once")
    ap.add_argument("--rounds", type=int, default=None, help="rounds per daemon, ABBA order (default 2, quick 1)")
    args = ap.parse_args()
    containers = args.containers or (10 if args.quick else 40)
    rounds = args.rounds or (1 if args.quick else 2)
    failed = False
    with Bench("load", args) as b:
        ours, theirs = b.start_both()
        img = b.busybox()
        for side in (ours, theirs):
            side.ctr("images", "pull", "--plain-http", img)
        lat: dict[str, dict[str, list[float]]] = {"ours": defaultdict(list), "containerd": defaultdict(list)}
        for rnd, side in Bench.alternate(ours, theirs, rounds):
            res = asyncio.run(run_load(side.address, img, clients=args.clients, containers=containers,
                                       parallel=args.parallel, prefix=f"load{rnd}"))
            for kind, xs in res.latencies.items():
                lat[side.name][kind] += xs
            b.sample("driver cycle", side, sorted(res.cycle_times)[len(res.cycle_times) // 2] if res.cycle_times
                     else float("nan"))
            b.sample("reads/s (all clients)", side, res.reads / res.duration if res.duration else 0.0)
            b.sample("RPC errors", side, len(res.errors))
            b.sample("lost events", side, sum(res.lost.values()))
            print(f"[{side.name}] round {rnd}: {res.reads} reads, {len(res.cycle_times)}/{containers} containers, "
                  f"{len(res.errors)} errors, {sum(res.lost.values())} lost events "
                  f"({len(res.lost)} subscribers short), {res.duration:.1f} s", flush=True)
            for e in res.errors[:5]:
                print(f"  error: {e}")
            b.extra.setdefault("errors", {}).setdefault(side.name, []).extend(res.errors[:20])
            failed |= bool(res.errors or res.lost)
        for kind in KINDS:
            for q in (50, 99):
                o, c = lat["ours"].get(kind, []), lat["containerd"].get(kind, [])
                b.row(f"{kind} p{q}", "ms", percentile(o, q) * 1000 if o else None,
                      percentile(c, q) * 1000 if c else None, f"n={len(o)}/{len(c)}")
        b.row_from_samples("driver cycle", "s", note="create+task+start+wait+delete, median per round")
        b.row_from_samples("reads/s (all clients)", "ops/s", note=f"{args.clients} clients")
        b.rows[-1].lower_is_better = False
        for fig in ("RPC errors", "lost events"):
            s = b.samples[fig]
            b.row(fig, "count", sum(s.get("ours", [])), sum(s.get("containerd", [])), "must be 0")
        b.extra["clients"], b.extra["containers"], b.extra["rounds"] = args.clients, containers, rounds
        b.report()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
