"""The read paths' memos never answer with data older than a write the caller saw.

Containers and images: records decoded once per stored bytes (:class:`ContainerStore`),
messages once per record, and whole List/Get answers per database write generation
(:class:`~pycontainerd.memo.Latest` in the servicers). Every write here is followed by the
reads a client would make next; each must show it.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from pycontainerd import namespaces
from pycontainerd.api.services.containers.v1 import containers_pb2
from pycontainerd.api.services.images.v1 import images_pb2
from pycontainerd.descriptor import Descriptor
from pycontainerd.errdefs import NotFound
from pycontainerd.events.exchange import Exchange
from pycontainerd.memo import ByIdentity, Latest, Memo
from pycontainerd.metadata.containers import ContainerStore, _record
from pycontainerd.metadata.keys import container_key
from pycontainerd.records.containers import Container, Runtime
from pycontainerd.metadata.db import MetadataDB
from pycontainerd.metadata.images import ImageStore
from pycontainerd.records.images import Image
from pycontainerd.services.containers import ContainersServicer
from pycontainerd.services.images import ImagesServicer
from pycontainerd.typeurl import AnyValue

SPEC = AnyValue("types.containerd.io/opencontainers/runtime-spec/1/Spec", b'{"ociVersion":"1.1.0"}')
MT = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture
def db(tmp_path):
    db = MetadataDB(tmp_path / "m")
    yield db
    db.close()


def ctr(cid: str, **kw) -> Container:
    return Container(cid, Runtime("io.containerd.runc.v2"), SPEC, **kw)


async def listed(svc: ContainersServicer, *filters: str) -> dict[str, dict[str, str]]:
    resp = await svc.List(containers_pb2.ListContainersRequest(filters=list(filters)), None)
    return {c.id: dict(c.labels) for c in resp.containers}


async def got(svc: ContainersServicer, cid: str) -> dict[str, str]:
    return dict((await svc.Get(containers_pb2.GetContainerRequest(id=cid), None)).container.labels)


async def test_every_container_write_is_seen_by_the_next_list_and_get(db):
    store = ContainerStore(db, Exchange())
    svc = ContainersServicer(store)
    with namespaces.using("ns1"):
        await store.create(ctr("a", labels={"v": "1"}))
        assert await listed(svc) == {"a": {"v": "1"}} and await got(svc, "a") == {"v": "1"}
        assert await listed(svc) == {"a": {"v": "1"}}  # an answer from the memo
        await store.update(ctr("a", labels={"v": "2"}), ["labels.v"])
        assert await listed(svc) == {"a": {"v": "2"}} and await got(svc, "a") == {"v": "2"}
        assert await listed(svc, "labels.v==2") == {"a": {"v": "2"}}
        await store.create(ctr("b"))
        assert await listed(svc) == {"a": {"v": "2"}, "b": {}}
        assert await listed(svc, "labels.v==2") == {"a": {"v": "2"}}
        await store.delete("a")
        assert await listed(svc) == {"b": {}}
        with pytest.raises(NotFound):
            await svc.Get(containers_pb2.GetContainerRequest(id="a"), None)
        await store.create(ctr("a", labels={"v": "3"}))  # the same id again
        assert await got(svc, "a") == {"v": "3"} and await listed(svc) == {"a": {"v": "3"}, "b": {}}
    with namespaces.using("ns2"):  # answers are per namespace
        assert await listed(svc) == {}
        with pytest.raises(NotFound):
            await svc.Get(containers_pb2.GetContainerRequest(id="b"), None)


async def test_a_write_committed_while_an_answer_is_made_is_not_hidden_by_it(db):
    """The generation is read before the data: an answer made across a commit is kept
    under the older generation, and the next call (after the write) makes a new one."""
    store = ContainerStore(db, Exchange())
    svc = ContainersServicer(store)
    with namespaces.using("default"):
        await store.create(ctr("a", labels={"v": "1"}))
        original = store.list

        def list_then_write(filters=()):
            rows = original(filters)
            current = store.get("a")
            db.update_sync(lambda txn: txn.put("objects", container_key("default", "a"),
                                               _record(replace(current, labels={"v": "2"}, updated_at=1))))
            return rows

        store.list = list_then_write
        assert await listed(svc) == {"a": {"v": "1"}}  # made from data read before the write
        store.list = original
        assert await listed(svc) == {"a": {"v": "2"}}


async def test_records_are_shared_read_only_and_decoded_once(db):
    store = ContainerStore(db, Exchange())
    with namespaces.using("default"):
        await store.create(ctr("a", labels={"v": "1"}, extensions={"x": SPEC}))
        first = store.get("a")
        assert store.get("a") is first and store.list()[0] is first
        with pytest.raises(TypeError):
            first.labels["v"] = "2"  # type: ignore[index]
        with pytest.raises(TypeError):
            first.extensions["y"] = SPEC  # type: ignore[index]
        await store.update(ctr("a", labels={"v": "2"}), ["labels.v"])
        assert store.get("a") is not first and store.get("a").labels == {"v": "2"}


async def test_every_image_write_is_seen_by_the_next_list_and_get(db):
    store = ImageStore(db, Exchange())
    svc = ImagesServicer(store)

    async def images() -> dict[str, str]:
        resp = await svc.List(images_pb2.ListImagesRequest(), None)
        return {i.name: i.target.digest for i in resp.images}

    d1, d2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64
    with namespaces.using("default"):
        await store.create(Image("x:1", Descriptor(MT, d1, 10)))
        assert await images() == {"x:1": d1} and await images() == {"x:1": d1}
        await store.update(Image("x:1", Descriptor(MT, d2, 10)), ["target"])
        assert await images() == {"x:1": d2}
        assert (await svc.Get(images_pb2.GetImageRequest(name="x:1"), None)).image.target.digest == d2
        await store.delete("x:1")
        assert await images() == {}
        with pytest.raises(NotFound):
            await svc.Get(images_pb2.GetImageRequest(name="x:1"), None)


def test_memo_and_latest_are_bounded():
    memo: Memo[int] = Memo(size=3)
    for i in range(10):
        assert memo.get(i, lambda i=i: i * 2) == i * 2
    assert len(memo) == 3 and memo.get(9, lambda: -1) == 18
    latest: Latest[str] = Latest(size=2)
    assert latest.get("k", 1, lambda: "one") == "one"
    assert latest.get("k", 1, lambda: "other") == "one"
    assert latest.get("k", 2, lambda: "two") == "two"
    assert latest.get("k", 1, lambda: "late") == "late"  # an older generation's answer is not kept
    assert latest.get("k", 2, lambda: "other") == "two"
    for k in ("a", "b", "c"):
        latest.get(k, 1, lambda: k)
    assert latest.get("k", 2, lambda: "made again") == "made again"


async def test_deleted_records_are_not_kept(db):
    """One container after another (``ctr run --rm`` in a loop): the memos hold the live
    records only, not every record there ever was (keyed by stored bytes, they grew by each
    one until 4,096: megabytes of specs)."""
    store = ContainerStore(db, Exchange())
    svc = ContainersServicer(store)
    with namespaces.using("default"):
        await store.create(ctr("keep", extensions={"x": SPEC}))
        for i in range(50):
            await store.create(ctr(f"run{i}", extensions={"x": SPEC}))
            await svc.Get(containers_pb2.GetContainerRequest(id=f"run{i}"), None)
            await svc.List(containers_pb2.ListContainersRequest(), None)
            await store.update(ctr(f"run{i}", labels={"v": "2"}), ["labels.v"])
            store.get(f"run{i}")
            await store.delete(f"run{i}")
        await svc.List(containers_pb2.ListContainersRequest(), None)
        assert len(store._decoded) == 1 and len(svc._encoded) == 1
        # the tasks service reads through a store of its own on the same database
        other = ContainerStore(db, Exchange())
        await store.create(ctr("elsewhere", extensions={"x": SPEC}))
        other.get("elsewhere")
        await store.delete("elsewhere")
        assert len(other._decoded) == 1
        # a record read again after a write is decoded from the new bytes, not answered from the old
        await store.update(ctr("keep", labels={"v": "3"}), ["labels.v"])
        assert store.get("keep").labels == {"v": "3"} and len(store._decoded) == 1


def test_by_identity_forgets_a_value_with_its_object():
    class Obj:
        pass

    memo: ByIdentity[str] = ByIdentity()
    a = Obj()
    assert memo.get(a, lambda: "made") == "made" and memo.get(a, lambda: "again") == "made"
    del a
    assert len(memo) == 0
