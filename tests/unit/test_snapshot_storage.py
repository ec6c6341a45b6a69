"""The snapshotter metadata store (pycontainerd.snapshots.storage): containerd's rules,
error codes and words, without any mount."""

from __future__ import annotations

import lmdb
import pytest

from pycontainerd.errdefs import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from pycontainerd.snapshots import storage
from pycontainerd.snapshots.storage import MetaStore
from pycontainerd.snapshots.types import (
    Info,
    Kind,
    Usage,
    adaptor,
    host_platform,
    inherited_labels,
)


@pytest.fixture
def ms(tmp_path):
    store = MetaStore(tmp_path / "metadata")
    yield store
    store.close()


def create(ms, kind, key, parent="", labels=None):
    return ms.update(lambda txn: storage.create_snapshot(txn, kind, key, parent, labels))


def commit(ms, key, name, usage=Usage(), labels=None):
    return ms.update(lambda txn: storage.commit_active(txn, key, name, usage, labels))


def remove(ms, key):
    return ms.update(lambda txn: storage.remove(txn, key))


def info(ms, key):
    return ms.view(lambda txn: storage.get_info(txn, key))


def test_ids_increase_and_are_never_reused(ms):
    assert create(ms, Kind.ACTIVE, "a").id == "1"
    assert create(ms, Kind.VIEW, "b").id == "2"
    remove(ms, "b")
    assert create(ms, Kind.ACTIVE, "b").id == "3"
    assert ms.view(storage.id_map) == {"1": "a", "3": "b"}


def test_parent_chain_nearest_first(ms):
    create(ms, Kind.ACTIVE, "a")
    commit(ms, "a", "A")
    create(ms, Kind.ACTIVE, "b", "A")
    commit(ms, "b", "B")
    snap = create(ms, Kind.ACTIVE, "c", "B")
    assert snap.parent_ids == ["2", "1"]
    assert ms.view(lambda txn: storage.get_snapshot(txn, "c")) == snap


def test_create_rules(ms):
    create(ms, Kind.ACTIVE, "a")
    with pytest.raises(AlreadyExists, match="snapshot a: already exists"):
        create(ms, Kind.VIEW, "a")
    with pytest.raises(NotFound, match='missing parent "nope" bucket: not found'):
        create(ms, Kind.ACTIVE, "x", "nope")
    with pytest.raises(InvalidArgument, match='parent "a" is not committed snapshot: invalid argument'):
        create(ms, Kind.ACTIVE, "x", "a")
    with pytest.raises(InvalidArgument, match="only snapshots of type Active or View"):
        create(ms, Kind.COMMITTED, "x")
    with pytest.raises(InvalidArgument, match="must not be empty"):
        create(ms, Kind.ACTIVE, "")
    with pytest.raises(InvalidArgument, match="NUL"):
        create(ms, Kind.ACTIVE, "a\0b")
    with pytest.raises(InvalidArgument, match="longer than"):
        create(ms, Kind.ACTIVE, "k" * 600)
    with pytest.raises(InvalidArgument, match="info.Labels"):
        create(ms, Kind.ACTIVE, "x", labels={"k": "v" * 5000})
    # a failed create leaves no record and consumes no id
    assert ms.view(storage.id_map) == {"1": "a"}


def test_commit_rules(ms):
    create(ms, Kind.ACTIVE, "a", labels={"on-active": "1"})
    create(ms, Kind.VIEW, "v")
    commit(ms, "a", "A", Usage(4096, 2), {"on-commit": "1"})
    _, i, usage = info(ms, "A")
    assert (i.kind, i.labels, usage) == (Kind.COMMITTED, {"on-commit": "1"}, Usage(4096, 2))
    with pytest.raises(NotFound):
        info(ms, "a")
    with pytest.raises(AlreadyExists, match="committed snapshot A: already exists"):
        commit(ms, "v", "A")
    with pytest.raises(NotFound, match='failed to get active snapshot "gone"'):
        commit(ms, "gone", "G")
    with pytest.raises(FailedPrecondition, match='snapshot "v" is not active'):
        commit(ms, "v", "V")
    with pytest.raises(FailedPrecondition, match='snapshot "A" is not active'):
        commit(ms, "A", "AA")


def test_commit_keeps_id_and_moves_the_child_link(ms):
    create(ms, Kind.ACTIVE, "a")
    commit(ms, "a", "A")
    create(ms, Kind.ACTIVE, "b", "A")
    commit(ms, "b", "B")
    sid, i, _ = info(ms, "B")
    assert (sid, i.parent) == ("2", "A")
    with pytest.raises(FailedPrecondition, match="cannot remove snapshot with child: failed precondition"):
        remove(ms, "A")
    assert remove(ms, "B") == ("2", Kind.COMMITTED)
    assert remove(ms, "A") == ("1", Kind.COMMITTED)


def test_remove_missing(ms):
    with pytest.raises(NotFound, match="snapshot x: not found"):
        remove(ms, "x")


def test_mounts_only_for_active_and_view(ms):
    create(ms, Kind.ACTIVE, "a")
    commit(ms, "a", "A")
    with pytest.raises(FailedPrecondition, match="requested snapshot A not active or view"):
        ms.view(lambda txn: storage.get_snapshot(txn, "A"))
    with pytest.raises(NotFound):
        ms.view(lambda txn: storage.get_snapshot(txn, "none"))


def test_update_by_field_paths(ms):
    create(ms, Kind.ACTIVE, "a", labels={"l1": "v1", "l2": "v2"})
    _, before, _ = info(ms, "a")
    updated = ms.update(lambda txn: storage.update_info(txn, Info("a", labels={"l1": "x", "l3": "y"}), ["labels.l1", "labels.l2"]))
    assert updated.labels == {"l1": "x"}
    assert updated.created_at == before.created_at and updated.updated_at >= before.updated_at
    replaced = ms.update(lambda txn: storage.update_info(txn, Info("a", labels={"z": "1"})))
    assert replaced.labels == {"z": "1"}
    with pytest.raises(InvalidArgument, match='cannot update "parent" field on snapshot "a": invalid argument'):
        ms.update(lambda txn: storage.update_info(txn, Info("a", parent="p"), ["parent"]))
    with pytest.raises(NotFound):
        ms.update(lambda txn: storage.update_info(txn, Info("nope"), []))


def test_walk_filters(ms):
    create(ms, Kind.ACTIVE, "a", labels={"x": "1"})
    commit(ms, "a", "A", labels={"x": "2"})
    create(ms, Kind.VIEW, "v", "A")
    create(ms, Kind.ACTIVE, "b", "A", labels={"x": "1"})

    def walk(*filters):
        return [i.name for _, i in ms.view(lambda txn: storage.walk_info(txn, filters))]

    assert walk() == ["A", "b", "v"]
    assert walk("kind==committed") == ["A"]
    assert walk("parent==A") == ["b", "v"]
    assert walk("labels.x==1", "kind==view") == ["b", "v"]
    assert walk('parent!=""') == ["b", "v"]
    with pytest.raises(InvalidArgument):
        walk("kind===x")


def test_filter_adaptor_fields():
    i = Info("n", parent="", kind=Kind.VIEW, labels={"a.b": "c"})
    field = adaptor(i)
    assert (field(["kind"]), field(["name"]), field(["parent"])) == ("view", "n", "")
    assert field(["labels", "a", "b"]) == "c" and field(["labels", "x"]) is None
    assert adaptor(Info("n"))(["labels", "x"]) is None


def test_kind_names_match_containerd():
    assert [str(k) for k in Kind] == ["Unknown", "View", "Active", "Committed"]
    assert [int(k) for k in Kind] == [0, 1, 2, 3]  # the wire enum's numbers
    assert Kind.parse("ACTIVE") is Kind.ACTIVE and Kind.parse("bogus") is Kind.UNKNOWN


def test_inherited_labels():
    labels = {"containerd.io/snapshot.ref": "r", "containerd.io/snapshot/x": "1", "containerd.io/gc.root": "t", "a": "b"}
    assert inherited_labels(labels) == {"containerd.io/snapshot.ref": "r", "containerd.io/snapshot/x": "1"}


def test_host_platform(monkeypatch):
    import platform

    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    assert host_platform() == {"os": "linux", "architecture": "arm64", "variant": "v8"}
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    assert host_platform() == {"os": "linux", "architecture": "amd64"}


def test_survives_reopen_and_closes_twice(tmp_path):
    store = MetaStore(tmp_path / "m")
    store.update(lambda txn: storage.create_snapshot(txn, Kind.ACTIVE, "a"))
    store.close()
    store.close()
    with pytest.raises(FailedPrecondition, match="closed"):
        store.view(storage.id_map)
    again = MetaStore(tmp_path / "m")
    try:
        assert again.view(storage.id_map) == {"1": "a"}
        assert again.update(lambda txn: storage.create_snapshot(txn, Kind.ACTIVE, "b")).id == "2"
    finally:
        again.close()


def test_newer_schema_is_refused(tmp_path):
    env = lmdb.open(str(tmp_path / "m"), max_dbs=3)
    meta = env.open_db(b"meta")
    with env.begin(write=True) as txn:
        txn.put(b"schema", b"99", db=meta)
    env.close()
    with pytest.raises(FailedPrecondition, match="newer"):
        MetaStore(tmp_path / "m")
