import asyncio
import time

import pytest

from pycontainerd import namespaces
from pycontainerd.descriptor import Descriptor
from pycontainerd.errdefs import InvalidArgument, NotFound, NotImplementedYet
from pycontainerd.gc_scheduler import Scheduler
from pycontainerd.metadata import gc as gc_mod
from pycontainerd.metadata.db import MetadataDB
from pycontainerd.metadata.keys import key
from pycontainerd.metadata.images import Image, ImageStore
from pycontainerd.metadata.leases import LeaseStore, Resource

D = ["sha256:" + str(i) * 64 for i in range(8)]


@pytest.fixture
def db(tmp_path):
    d = MetadataDB(tmp_path / "m")
    yield d
    d.close()


def put_blob(txn, ns, digest, labels=None):
    txn.put("objects", key(ns, "content", "blob", digest), {"labels": labels or {}, "size": 1})


def blobs(db, ns):
    prefix = key(ns, "content", "blob") + b"\0"
    return sorted(k[len(prefix):].decode() for k, _ in db.view(lambda t: list(t.scan("objects", prefix))))


async def test_images_and_label_refs_keep_content(db):
    def setup(txn):
        # image -> index D0 -> manifest D1 -> config D2, layer D3 ; D4 unreferenced
        put_blob(txn, "ns", D[0], {"containerd.io/gc.ref.content.m.0": D[1]})
        put_blob(txn, "ns", D[1], {"containerd.io/gc.ref.content.config": D[2], "containerd.io/gc.ref.content.l.0": D[3]})
        put_blob(txn, "ns", D[2])
        put_blob(txn, "ns", D[3])
        put_blob(txn, "ns", D[4])
        put_blob(txn, "ns", D[5], {"containerd.io/gc.root": "1"})

    db.update_sync(setup)
    with namespaces.using("ns"):
        await ImageStore(db).create(Image("img", Descriptor("application/vnd.oci.image.index.v1+json", D[0], 10)))
    swept = []
    sched = Scheduler(db, {"content": lambda txn, result: swept.append(set(result.live_content))})
    result = await sched.collect()
    assert blobs(db, "ns") == sorted([D[0], D[1], D[2], D[3], D[5]])
    assert ("content", "ns", D[4]) in result.removed
    assert swept == [{D[0], D[1], D[2], D[3], D[5]}]
    with namespaces.using("ns"):
        await ImageStore(db).delete("img")
    await sched.collect()
    assert blobs(db, "ns") == [D[5]]


async def test_same_digest_in_two_namespaces_is_kept_while_one_references_it(db):
    def setup(txn):
        put_blob(txn, "a", D[1], {"containerd.io/gc.root": "x"})
        put_blob(txn, "b", D[1])

    db.update_sync(setup)
    result = await Scheduler(db).collect()
    assert blobs(db, "a") == [D[1]] and blobs(db, "b") == []
    assert D[1] in result.live_content


async def test_leases_hold_content_until_deleted_or_expired(db):
    db.update_sync(lambda txn: [put_blob(txn, "ns", d) for d in D[:3]])
    sched = Scheduler(db)
    leases = LeaseStore(db, sched)
    with namespaces.using("ns"):
        await leases.create("hold")
        await leases.add_resource("hold", Resource(D[0], "content"))
        past = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
        await leases.create("old", {"containerd.io/gc.expire": past})
        await leases.add_resource("old", Resource(D[1], "content"))
        assert {r.id for r in leases.list_resources("hold")} == {D[0]}
    await sched.collect()
    assert blobs(db, "ns") == [D[0]]
    with namespaces.using("ns"):
        assert [x.id for x in leases.list()] == ["hold"]  # the expired lease went too
        await leases.delete("hold", sync=True)
    assert blobs(db, "ns") == []


async def test_lease_errors(db):
    leases = LeaseStore(db)
    with namespaces.using("ns"):
        generated = await leases.create("")
        assert generated.id and [x.id for x in leases.list()] == [generated.id]
        await leases.delete(generated.id)
        with pytest.raises(NotFound):
            await leases.add_resource("nope", Resource(D[0], "content"))
        await leases.create("l")
        with pytest.raises(InvalidArgument):
            await leases.add_resource("l", Resource("not-a-digest", "content"))
        with pytest.raises(NotImplementedYet):
            await leases.add_resource("l", Resource("x", "images"))
        with pytest.raises(InvalidArgument):
            await leases.add_resource("l", Resource("x", "snapshots"))
        await leases.add_resource("l", Resource("k1", "snapshots/overlayfs"))
        await leases.add_resource("l", Resource("ref-1", "ingests"))
        got = {(r.type, r.id) for r in leases.list_resources("l")}
        assert got == {("snapshots/overlayfs", "k1"), ("ingests", "ref-1")}
        await leases.delete_resource("l", Resource("k1", "snapshots/overlayfs"))
        assert [r.id for r in leases.list_resources("l")] == ["ref-1"]
        with pytest.raises(NotFound):
            await leases.delete("nope")
        assert [x.id for x in leases.list(["id==l"])] == ["l"]
    with namespaces.using("other"):
        assert leases.list() == []
        with pytest.raises(NotFound):
            leases.list_resources("l")


async def test_flat_lease_keeps_only_direct_resources(db):
    db.update_sync(lambda txn: [put_blob(txn, "ns", D[0], {"containerd.io/gc.ref.content": D[1]}), put_blob(txn, "ns", D[1])])
    leases = LeaseStore(db)
    with namespaces.using("ns"):
        await leases.create("flat", {"containerd.io/gc.flat": "1"})
        await leases.add_resource("flat", Resource(D[0], "content"))
    await Scheduler(db).collect()
    assert blobs(db, "ns") == [D[0]]


async def test_snapshot_parents_and_refs(db):
    def setup(txn):
        put_blob(txn, "ns", D[0], {"containerd.io/gc.ref.snapshot.overlayfs": "top"})
        txn.put("objects", key("ns", "snapshots", "overlayfs", "top"), {"parent": "base", "labels": {}})
        txn.put("objects", key("ns", "snapshots", "overlayfs", "base"), {"labels": {}})
        txn.put("objects", key("ns", "snapshots", "overlayfs", "orphan"), {"labels": {}})
        txn.put("objects", key("ns", "containers", "c1"), {"snapshotter": "overlayfs", "snapshot_key": "rw",
                                                           "labels": {}})
        txn.put("objects", key("ns", "snapshots", "overlayfs", "rw"), {"parent": "top", "labels": {}})

    db.update_sync(setup)
    result = await Scheduler(db).collect()
    assert result.live_snapshots == {"overlayfs": {"top", "base", "rw"}}
    assert ("snapshots", "ns", ("overlayfs", "orphan")) in result.removed
    # nothing roots the blob that points at "top": it goes, "top" stays through rw's parent
    assert ("content", "ns", D[0]) in result.removed


async def test_schedule_coalesces(db):
    sched = Scheduler(db, schedule_delay=0.05)
    for _ in range(5):
        sched.schedule()
    import asyncio

    await asyncio.sleep(0.3)
    assert sched.collections == 1
    await sched.close()


async def test_expired_ingest_without_lease_is_removed(db):
    def setup(txn):
        txn.put("objects", key("ns", "content", "ingests", "old"), {"ref": "ns/1/old", "expire_at": 1})
        txn.put("objects", key("ns", "content", "ingests", "new"), {"ref": "ns/1/new",
                                                                   "expire_at": time.time_ns() + 10**12})
        txn.put("objects", key("ns", "content", "ingests", "held"), {"ref": "ns/1/held", "expire_at": 1})
        txn.put("objects", key("ns", "leases", "l"), {"labels": {}, "created_at": 1})
        txn.put("objects", key("ns", "leases", "l", "ingests", "held"), {})

    db.update_sync(setup)
    result = await Scheduler(db).collect()
    assert ("ingests", "ns", "old") in result.removed
    left = db.view(lambda t: [k for k, _ in t.scan("objects", key("ns", "content", "ingests") + b"\0")])
    assert sorted(k.rsplit(b"\0", 1)[1] for k in left) == [b"held", b"new"]


async def test_scheduled_collections_sweep_only_backends_that_lost_references(db):
    """After the first collection (which sweeps every backend: what a crash left), a
    scheduled collection sweeps a backend only when it removed that backend's references or
    a delete named it dirty: deleting a lease that held nothing walks no blob or snapshot
    directory. :meth:`Scheduler.collect` (sync deletes) still sweeps every backend."""
    db.update_sync(lambda txn: put_blob(txn, "ns", D[0], {"containerd.io/gc.root": "1"}))
    swept: list[str] = []
    sched = Scheduler(db, {"content": lambda txn, result: swept.append("content"),
                           "snapshotter/overlayfs": lambda txn, result: swept.append("snapshotter/overlayfs")})
    leases = LeaseStore(db, sched)

    async def scheduled(*dirty):
        n = sched.collections
        sched.schedule(*dirty)
        while sched.collections == n:
            await asyncio.sleep(0.01)

    await scheduled()
    assert sorted(swept) == ["content", "snapshotter/overlayfs"]

    swept.clear()
    with namespaces.using("ns"):
        await leases.create("empty")
        await leases.delete("empty")
    while sched.collections < 2:
        await asyncio.sleep(0.01)
    assert swept == []

    db.update_sync(lambda txn: put_blob(txn, "ns", D[1]))  # nothing keeps it
    await scheduled()
    assert swept == ["content"] and blobs(db, "ns") == [D[0]]

    swept.clear()
    await scheduled("snapshotter/overlayfs")  # what a snapshot delete says
    assert swept == ["snapshotter/overlayfs"]

    swept.clear()
    await sched.collect()
    assert sorted(swept) == ["content", "snapshotter/overlayfs"]

    swept.clear()
    n_before = sched.collections

    def failing(txn, result):
        raise RuntimeError("disk gone")

    sched.sweepers["content"] = failing
    sched.schedule("content")
    await sched._pending  # fails (logged), rolled back
    assert sched.collections == n_before
    sched.sweepers["content"] = lambda txn, result: swept.append("content")
    await scheduled()
    assert swept == ["content"]  # still dirty after the failed collection



async def _until(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def _slowed_collect(monkeypatch, seconds):
    collect_sync = gc_mod.collect

    def slow_collect(*args, **kwargs):
        time.sleep(seconds)
        return collect_sync(*args, **kwargs)

    monkeypatch.setattr(gc_mod, "collect", slow_collect)


async def test_pause_threshold_spaces_scheduled_collections(db, monkeypatch):
    """containerd's policy: after a collection that took d seconds, the next scheduled one
    waits d / pause_threshold - d from its end, and deletes meanwhile make one collection."""
    sched = Scheduler(db, pause_threshold=0.1)
    _slowed_collect(monkeypatch, 0.1)
    await sched.collect()  # >= 0.1 s: the next scheduled one waits >= 0.9 s after it
    sched.schedule()
    sched.schedule()
    await asyncio.sleep(0.2)
    assert sched.collections == 1
    await _until(lambda: sched.collections == 2)
    await asyncio.sleep(0.2)
    assert sched.collections == 2
    await sched.close()


async def test_deletion_threshold_collects_early(db, monkeypatch):
    sched = Scheduler(db, pause_threshold=0.01, deletion_threshold=3)
    _slowed_collect(monkeypatch, 0.1)
    await sched.collect()  # the pause threshold alone would wait ~10 s
    sched.schedule()
    sched.schedule()
    await asyncio.sleep(0.2)
    assert sched.collections == 1
    sched.schedule()  # the third delete: collect now
    await _until(lambda: sched.collections == 2)
    await sched.close()


async def test_delete_during_a_collection_is_collected_after_it(db, monkeypatch):
    sched = Scheduler(db)
    _slowed_collect(monkeypatch, 0.3)
    sched.schedule()
    await _until(lambda: sched._lock.locked())  # the first collection is running
    sched.schedule()
    await _until(lambda: sched.collections == 2)
    await sched.close()
