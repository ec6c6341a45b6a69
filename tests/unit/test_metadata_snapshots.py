"""The namespaced snapshot store (pycontainerd.metadata.snapshots) over the native
snapshotter, without mounting anything: namespaces, records, leases, events, garbage
collection and the cross-namespace "target already exists" path."""

from __future__ import annotations

import threading

import pytest

from pycontainerd import leases_context, namespaces
from pycontainerd.errdefs import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from pycontainerd.gc_scheduler import Scheduler
from pycontainerd.metadata import gc as gc_mod
from pycontainerd.metadata.db import MetadataDB
from pycontainerd.metadata.keys import key
from pycontainerd.metadata.leases import LeaseStore, Resource
from pycontainerd.metadata.namespaces import NamespaceStore
from pycontainerd.metadata.snapshots import SnapshotStore
from pycontainerd.snapshots.native import NativeSnapshotter
from pycontainerd.snapshots.types import LABEL_SNAPSHOT_REF, Info, Kind

ROOT = {"containerd.io/gc.root": "2030-01-01T00:00:00Z"}


class FakeExchange:
    def __init__(self):
        self.events = []

    def publish(self, topic, event, namespace=None):
        self.events.append((topic, namespace, event))


@pytest.fixture
def db(tmp_path):
    d = MetadataDB(tmp_path / "meta")
    yield d
    d.close()


@pytest.fixture
def backend(tmp_path):
    b = NativeSnapshotter(tmp_path / "native")
    yield b
    b.close_sync()


@pytest.fixture
def exchange():
    return FakeExchange()


@pytest.fixture
def store(db, backend, exchange):
    return SnapshotStore(db, "native", backend, exchange)


@pytest.fixture
def gc(db, store):
    return Scheduler(db, {"snapshotter/native": store.sweep})


def backend_names(backend):
    return sorted(i.name for i in backend.walk_sync())


async def test_same_key_in_two_namespaces_never_collides(store, backend):
    for ns in ("a", "b"):
        with namespaces.using(ns):
            await store.prepare("k", "", ROOT)
    assert backend_names(backend) == ["a/1/k", "b/1/k"]
    with namespaces.using("a"):
        assert [i.name for i in await store.walk()] == ["k"]
        await store.commit("K", "k", ROOT)
        await store.remove("K")
        await store.prepare("K", "", ROOT)  # a key is reusable at once
    assert backend_names(backend) == ["a/2/K", "a/3/K", "b/1/k"]
    with namespaces.using("c"), pytest.raises(NotFound, match="snapshot k does not exist"):
        await store.stat("k")


async def test_record_shape_is_what_the_garbage_collector_reads(store, db):
    with namespaces.using("ns"):
        await store.prepare("a", "", ROOT)
        await store.commit("A", "a", {"x": "1"})
        await store.prepare("b", "A", {"y": "2"})
    record = db.view(lambda txn: txn.get("objects", key("ns", "snapshots", "native", "b")))
    assert record["parent"] == "A" and record["labels"] == {"y": "2"}
    assert record["name"] == "ns/3/b" and record["created_at"] == record["updated_at"] > 0
    assert db.view(lambda txn: txn.get("namespaces", key("ns"))) is not None  # created on demand


async def test_only_inherited_labels_reach_the_backend(store, backend):
    labels = {"mine": "1", "containerd.io/snapshot/overlay.x": "2", LABEL_SNAPSHOT_REF: "ref"}
    with namespaces.using("ns"):
        await store.prepare("a", "", labels)
        info = await store.stat("a")
    assert info.labels == labels and info.kind == Kind.ACTIVE and info.name == "a"
    assert backend.stat_sync("ns/1/a").labels == {"containerd.io/snapshot/overlay.x": "2", LABEL_SNAPSHOT_REF: "ref"}


async def test_remove_rules_and_namespace_deletion(store, db):
    with namespaces.using("ns"):
        await store.prepare("a", "", ROOT)
        await store.commit("A", "a", ROOT)
        await store.view("v", "A")
        with pytest.raises(FailedPrecondition, match="cannot remove snapshot with child"):
            await store.remove("A")
        with pytest.raises(NotFound, match="snapshot a does not exist"):
            await store.remove("a")
    with pytest.raises(FailedPrecondition, match='still has snapshots on "native" snapshotter'):
        await NamespaceStore(db).delete("ns")
    with namespaces.using("ns"):
        await store.remove("v")
        await store.remove("A")
    await NamespaceStore(db).delete("ns")


async def test_errors_for_bad_requests(store):
    with pytest.raises(FailedPrecondition, match="namespace is required"):
        await store.prepare("a")
    with namespaces.using("ns"):
        with pytest.raises(InvalidArgument, match="must not be empty"):
            await store.prepare("")
        with pytest.raises(InvalidArgument, match="too long"):
            await store.prepare("k" * 600)
        with pytest.raises(InvalidArgument, match="info.Labels"):
            await store.prepare("a", "", {"k": "v" * 5000})
        with pytest.raises(NotFound, match="parent snapshot p does not exist"):
            await store.prepare("a", "p")
        await store.prepare("a")
        with pytest.raises(AlreadyExists, match='snapshot "a": already exists'):
            await store.prepare("a")
        with pytest.raises(InvalidArgument, match="not committed"):
            await store.prepare("b", "a")
        with pytest.raises(NotFound):
            await store.commit("B", "missing")
        await store.view("v")
        with pytest.raises(FailedPrecondition, match="not active"):
            await store.commit("V", "v")
        with pytest.raises(AlreadyExists):
            await store.commit("v", "a")
        with pytest.raises(InvalidArgument, match='cannot update "parent" field on snapshot "a"'):
            await store.update(Info("a", parent="x"), ["parent"])
        with pytest.raises(InvalidArgument):
            await store.update(Info(""))
        with pytest.raises(InvalidArgument):
            await store.walk(["name=="])
        assert sorted(i.name for i in await store.walk()) == ["a", "v"]  # failures left nothing


async def test_update_merges_like_containerd(store, backend):
    with namespaces.using("ns"):
        await store.prepare("a", "", {"l1": "v1", "l2": "v2"})
        updated = await store.update(Info("a", labels={"l1": "x", "containerd.io/snapshot/y": "1"}),
                                     ["labels.l1", "labels.l2", "labels.containerd.io/snapshot/y"])
        assert updated.labels == {"l1": "x", "containerd.io/snapshot/y": "1"}
        assert updated.updated_at > updated.created_at
        assert (await store.stat("a")) == updated
        assert [i.name for i in await store.walk(["labels.l1==x"])] == ["a"]
    assert backend.stat_sync("ns/1/a").labels == {"containerd.io/snapshot/y": "1"}


async def test_events_after_commit(store, exchange):
    with namespaces.using("ns"):
        await store.prepare("a", "", ROOT)
        await store.commit("A", "a", ROOT)
        await store.view("v", "A")
        await store.remove("v")
    topics = [(t, ns) for t, ns, _ in exchange.events]
    assert topics == [("/snapshot/prepare", "ns"), ("/snapshot/commit", "ns"), ("/snapshot/remove", "ns")]
    prepare, commit, remove = (e for _, _, e in exchange.events)
    assert (prepare.key, prepare.parent) == ("a", "")
    assert (commit.key, commit.name) == ("a", "A")
    assert remove.key == "v"


async def test_lease_holds_new_keys_and_commit_moves_the_hold(store, db, backend):
    leases = LeaseStore(db)
    with namespaces.using("ns"):
        await leases.create("l1")
        with leases_context.using("l1"):
            await store.prepare("a")
            assert leases.list_resources("l1") == [Resource(id="a", type="snapshots/native")]
            await store.commit("A", "a")
            assert leases.list_resources("l1") == [Resource(id="A", type="snapshots/native")]
        with leases_context.using("missing"):
            with pytest.raises(NotFound, match="lease"):
                await store.prepare("b")
            with pytest.raises(NotFound, match="lease"):
                await store.commit("C", "A")
        assert [i.name for i in await store.walk()] == ["A"]
    assert backend_names(backend) == ["ns/2/A"]


async def test_garbage_collection_removes_unreferenced_backend_snapshots(store, backend, gc):
    with namespaces.using("ns"):
        await store.prepare("a", "", ROOT)
        await store.commit("A", "a", ROOT)
        await store.prepare("b", "A")  # no gc.root, no lease: collectable
    result = await gc.collect()
    assert ("snapshots", "ns", ("native", "b")) in result.removed
    assert result.backend_removed["native"] == 1
    assert backend_names(backend) == ["ns/2/A"]
    with namespaces.using("ns"):
        assert [i.name for i in await store.walk()] == ["A"]


async def test_garbage_collection_removes_children_before_parents(store, backend, gc):
    with namespaces.using("ns"):
        parent = ""
        for i in range(4):
            await store.prepare(f"l{i}-a", parent, ROOT)
            await store.commit(f"l{i}", f"l{i}-a", ROOT)
            parent = f"l{i}"
        for i in reversed(range(4)):
            await store.remove(f"l{i}")
    assert len(backend_names(backend)) == 4
    result = await gc.collect()
    assert result.backend_removed["native"] == 4
    assert backend_names(backend) == []
    assert [p.name for p in backend.snapshots_dir.iterdir()] == []


async def test_directories_are_deleted_after_the_collection_commits(store, backend, db, gc, monkeypatch):
    """A snapshot's directory is renamed aside inside the collection's transaction and
    deleted after it: while the deletion runs, another metadata write goes through (a delete
    waiting behind a long directory removal was the Go client's 5x Containers.Delete)."""
    with namespaces.using("ns"):
        await store.prepare("gone", "")
    seen = []
    empty = backend.empty_trash_sync

    def empty_trash(trash):
        seen.append(([p.name for p in trash], sorted(p.name for p in backend.snapshots_dir.iterdir())))
        db.update_sync(lambda txn: txn.put("objects", key("ns", "probe"), {"written": True}))
        empty(trash)

    monkeypatch.setattr(backend, "empty_trash_sync", empty_trash)
    result = await gc.collect()
    assert result.backend_removed["native"] == 1
    [(trash, present)] = seen
    assert trash == present == ["rm-1"]
    assert db.view(lambda txn: txn.get("objects", key("ns", "probe"))) == {"written": True}
    assert list(backend.snapshots_dir.iterdir()) == []


async def test_sweep_spares_snapshots_being_created(store, backend, db, gc):
    """A collection asked for while the backend prepares (the record not written yet) waits
    for the prepare's transaction — backend snapshot and record commit in one — and then
    keeps the new snapshot."""

    real_prepare = backend.prepare_sync
    collector: list[threading.Thread] = []
    collected = []

    def prepare_then_collect(key_, parent, labels):
        mounts = real_prepare(key_, parent, labels)
        thread = threading.Thread(
            target=lambda: collected.append(db.update_sync(lambda txn: gc_mod.collect(txn, gc.sweepers))))
        thread.start()
        collector.append(thread)
        thread.join(0.2)
        assert thread.is_alive(), "the collection ran inside the prepare's transaction"
        return mounts

    backend.prepare_sync = prepare_then_collect
    with namespaces.using("ns"):
        await store.prepare("a", "", ROOT)
        collector[0].join(10)
        assert (await store.stat("a")).kind == Kind.ACTIVE
    assert collected and collected[0].backend_removed.get("native", 0) == 0
    assert backend_names(backend) == ["ns/1/a"]


async def test_failure_after_backend_prepare_removes_the_backend_snapshot(store, backend, monkeypatch):
    def lease_gone(*args):
        raise NotFound("lease \"l1\"")

    monkeypatch.setattr(store, "_lease_add", lease_gone)
    with namespaces.using("ns"), pytest.raises(NotFound, match="lease"):
        await store.prepare("a")
    with namespaces.using("ns"):
        assert await store.walk() == []
    assert backend_names(backend) == []


async def unpack_layer(store, key_, chain_id, parent=""):
    """What containerd's unpacker does for one layer (without applying a diff)."""
    labels = {LABEL_SNAPSHOT_REF: chain_id}
    try:
        await store.prepare(key_, parent, labels)
    except AlreadyExists:
        return (await store.stat(chain_id)).kind  # the layer exists: skip it
    await store.commit(chain_id, key_, labels)
    return None


async def test_target_committed_in_another_namespace_is_linked(store, backend, gc):
    with namespaces.using("a"):
        assert await unpack_layer(store, "extract-1 c1", "c1") is None
        assert await unpack_layer(store, "extract-2 c2", "c2", "c1") is None
        with pytest.raises(AlreadyExists, match='target snapshot "c1": already exists'):
            await store.prepare("extract-3 c1", "", {LABEL_SNAPSHOT_REF: "c1"})
    assert backend_names(backend) == ["a/2/c1", "a/4/c2"]
    with namespaces.using("b"):
        assert await unpack_layer(store, "extract-1 c1", "c1") == Kind.COMMITTED
        assert await unpack_layer(store, "extract-2 c2", "c2", "c1") == Kind.COMMITTED
        infos = {i.name: i for i in await store.walk()}
        assert set(infos) == {"c1", "c2"} and infos["c2"].parent == "c1"
        assert infos["c1"].labels[LABEL_SNAPSHOT_REF] == "c1"
        # a different parent is a different layer: it is built, not linked
        assert await unpack_layer(store, "extract-3 c1-on-c2", "c1x", "c2") is None
        # what an image's gc.ref label does: the top layer keeps its parents
        await store.update(Info("c1x", labels=ROOT), ["labels.containerd.io/gc.root"])
    assert backend_names(backend) == ["a/2/c1", "a/4/c2", "b/2/c1x"]
    # namespace a lets go of everything: b's references keep the shared snapshots
    with namespaces.using("a"):
        await store.remove("c2")
        await store.remove("c1")
    await gc.collect()
    assert backend_names(backend) == ["a/2/c1", "a/4/c2", "b/2/c1x"]
    with namespaces.using("b"):
        for k in ("c1x", "c2", "c1"):
            await store.remove(k)
    await gc.collect()
    assert backend_names(backend) == []


async def test_usage_mounts_and_cleanup_go_to_the_backend(store, backend):
    with namespaces.using("ns"):
        mounts = await store.prepare("a")
        assert mounts == await store.mounts("a")
        assert mounts[0].source == str(backend.snapshot_dir("1"))
        (backend.snapshot_dir("1") / "f").write_bytes(b"x" * 10000)
        usage = await store.usage("a")
        assert usage.inodes == 2 and usage.size >= 10000
        with pytest.raises(NotFound):
            await store.usage("b")
        (backend.snapshots_dir / "orphan").mkdir()
        await store.cleanup()
        assert sorted(p.name for p in backend.snapshots_dir.iterdir()) == ["1"]
