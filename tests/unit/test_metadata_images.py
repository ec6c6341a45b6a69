import pytest

from pycontainerd import namespaces
from pycontainerd.descriptor import Descriptor
from pycontainerd.errdefs import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from pycontainerd.events.exchange import Exchange
from pycontainerd.metadata.db import MetadataDB
from pycontainerd.metadata.images import Image, ImageStore
from pycontainerd.metadata.namespaces import NamespaceStore

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
MT = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture
def store(tmp_path):
    db = MetadataDB(tmp_path / "m")
    yield ImageStore(db, Exchange())
    db.close()


def img(name, digest=D1, **kw):
    return Image(name=name, target=Descriptor(MT, digest, 100), **kw)


async def test_crud_in_namespace(store):
    with namespaces.using("ns1"):
        created = await store.create(img("docker.io/library/busybox:latest", labels={"a": "1"}))
        assert created.created_at == created.updated_at > 0
        got = store.get("docker.io/library/busybox:latest")
        assert got.target.digest == D1 and got.labels == {"a": "1"}
        with pytest.raises(AlreadyExists):
            await store.create(img("docker.io/library/busybox:latest"))
        updated = await store.update(img("docker.io/library/busybox:latest", D2), ["target"])
        assert updated.target.digest == D2 and updated.labels == {"a": "1"}
        assert updated.created_at == created.created_at and updated.updated_at >= created.updated_at
        await store.update(img("docker.io/library/busybox:latest", labels={"b": "2"}), ["labels.b"])
        assert store.get("docker.io/library/busybox:latest").labels == {"a": "1", "b": "2"}
        with pytest.raises(InvalidArgument, match="cannot update"):
            await store.update(img("docker.io/library/busybox:latest"), ["name"])
    with namespaces.using("ns2"):
        with pytest.raises(NotFound):
            store.get("docker.io/library/busybox:latest")
        assert store.list() == []
        with pytest.raises(NotFound):
            await store.delete("docker.io/library/busybox:latest")
    with namespaces.using("ns1"):
        with pytest.raises(FailedPrecondition, match="images"):
            await NamespaceStore(store.db).delete("ns1")
        await store.delete("docker.io/library/busybox:latest")
        await NamespaceStore(store.db).delete("ns1")


async def test_validation(store):
    with namespaces.using("default"):
        with pytest.raises(InvalidArgument, match="name must not be empty"):
            await store.create(img(""))
        with pytest.raises(InvalidArgument, match="Target.Digest"):
            await store.create(img("x", "sha256:short"))
        with pytest.raises(InvalidArgument, match="Size"):
            await store.create(Image("x", Descriptor(MT, D1, 0)))
        with pytest.raises(InvalidArgument, match="MediaType"):
            await store.create(Image("x", Descriptor("", D1, 1)))
        assert store.list() == []
    with pytest.raises(FailedPrecondition, match="namespace is required"):
        store.list()


async def test_list_filters(store):
    with namespaces.using("default"):
        await store.create(img("a", labels={"team": "x"}))
        await store.create(img("b", D2))
        assert [i.name for i in store.list(["name==a"])] == ["a"]
        assert [i.name for i in store.list([f"target.digest=={D2}"])] == ["b"]
        assert [i.name for i in store.list(["labels.team"])] == ["a"]
        assert [i.name for i in store.list(["name==a", "name==b"])] == ["a", "b"]
        assert [i.name for i in store.list([f"target.mediatype=={MT}"])] == ["a", "b"]
        with pytest.raises(InvalidArgument):
            store.list(["name=="])
