import pytest

from pycontainerd.errdefs import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from pycontainerd.events.exchange import Exchange
from pycontainerd.metadata.db import SCHEMA_VERSION, MetadataDB
from pycontainerd.metadata.keys import key
from pycontainerd.metadata.namespaces import NamespaceStore, ensure, remaining_kinds


@pytest.fixture
def db(tmp_path):
    d = MetadataDB(tmp_path / "meta")
    yield d
    d.close()


async def test_crud_and_events(db):
    ex = Exchange()
    seen = []

    sub = ex.subscribe()

    async def collect():
        with sub:
            async for env in sub:
                seen.append((env.topic, env.namespace, env.event.name))
                if len(seen) == 3:
                    return

    import asyncio

    task = asyncio.create_task(collect())
    store = NamespaceStore(db, ex)
    await store.create("foo", {"a": "1"})
    assert store.get("foo").labels == {"a": "1"}
    await store.update("foo", {"b": "2"}, ["labels.b"])
    assert store.get("foo").labels == {"a": "1", "b": "2"}
    assert [n.name for n in store.list()] == ["foo"]
    await store.delete("foo")
    await asyncio.wait_for(task, 5)
    assert seen == [("/namespaces/create", "foo", "foo"), ("/namespaces/update", "foo", "foo"),
                    ("/namespaces/delete", "foo", "foo")]
    # containerd's Get reads labels only: a namespace that does not exist has none
    assert store.get("foo").labels == {}


async def test_errors(db):
    store = NamespaceStore(db)
    await store.create("x")
    with pytest.raises(AlreadyExists):
        await store.create("x")
    with pytest.raises(InvalidArgument):
        await store.create("bad/name")
    with pytest.raises(NotFound):
        await store.delete("nope")
    await store.update("nope", {}, [])  # a full replace with no labels creates nothing
    with pytest.raises(InvalidArgument, match="cannot update"):
        await store.update("x", {}, ["name"])
    with pytest.raises(InvalidArgument):
        await store.create("y", {"k": "v" * 5000})
    assert [n.name for n in store.list()] == ["x"]  # the failed create left nothing


async def test_update_of_absent_namespace_creates_it_as_containerd_does(db):
    """containerd's ``SetLabel`` creates the namespace's label bucket, so setting a label
    of a namespace that does not exist creates it (``ctr namespaces label nosuch a=b``)."""
    store = NamespaceStore(db)
    assert store.get("nosuch").labels == {}
    assert [n.name for n in store.list()] == []
    ns = await store.update("nosuch", {"a": "b"}, ["labels.a"])
    assert ns.labels == {"a": "b"}
    assert store.get("nosuch").labels == {"a": "b"}
    await store.update("whole", {"k": "v"}, [])
    assert [(n.name, n.labels) for n in store.list()] == [("nosuch", {"a": "b"}), ("whole", {"k": "v"})]
    with pytest.raises(InvalidArgument, match="cannot update"):
        await store.update("other", {}, ["name"])
    assert "other" not in [n.name for n in store.list()]


async def test_delete_refuses_non_empty_and_names_what_remains(db):
    store = NamespaceStore(db)
    await store.create("busy")

    def add(txn):
        txn.put("objects", key("busy", "image", "docker.io/library/busybox:latest"), {})
        txn.put("objects", key("busy", "snapshots", "overlayfs", "k1"), {})
        txn.put("objects", key("busy", "content", "blob", "sha256:" + "a" * 64), {})

    await db.update(add)
    with pytest.raises(FailedPrecondition) as err:
        await store.delete("busy")
    assert str(err.value) == (
        'namespace "busy" must be empty, but it still has blobs, images, '
        'snapshots on "overlayfs" snapshotter: failed precondition'
    )
    assert store.get("busy").name == "busy"


async def test_ensure_creates_once(db):
    db.update_sync(lambda txn: ensure(txn, "k8s.io"))
    db.update_sync(lambda txn: ensure(txn, "k8s.io"))
    assert db.view(lambda txn: remaining_kinds(txn, "k8s.io")) == []
    assert [n.name for n in NamespaceStore(db).list()] == ["k8s.io"]


def test_failed_transaction_writes_nothing(db):
    def txn_fn(txn):
        txn.put("namespaces", key("half"), {"labels": {}})
        raise RuntimeError("crash mid-transaction")

    with pytest.raises(RuntimeError):
        db.update_sync(txn_fn)
    assert db.view(lambda txn: txn.get("namespaces", key("half"))) is None


def test_schema_version_recorded_and_newer_refused(tmp_path):
    d = MetadataDB(tmp_path / "m")
    assert d.schema_version == SCHEMA_VERSION
    with d.env.begin(write=True) as raw:
        raw.put(b"schema", b"99", db=d.dbs["meta"])
    d.close()
    with pytest.raises(FailedPrecondition, match="newer"):
        MetadataDB(tmp_path / "m")


def test_key_parts_may_not_contain_nul():
    with pytest.raises(InvalidArgument):
        key("a\0b")


async def test_ingests_and_leases_do_not_keep_a_namespace(db):
    store = NamespaceStore(db)
    await store.create("only-ingest")

    def add(txn):
        txn.put("objects", key("only-ingest", "content", "ingests", "ref-1"), {"ref": "x"})
        txn.put("objects", key("only-ingest", "leases", "l1"), {"labels": {}, "created_at": 1})

    await db.update(add)
    assert db.view(lambda txn: remaining_kinds(txn, "only-ingest")) == []
