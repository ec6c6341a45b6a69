"""The CRI's write path through its seam (pycontainerd.cri.daemon.Daemon) over real stores
(LMDB, the native snapshotter, the garbage collector): how many commits each CRI step makes,
and that what it holds, deletes and publishes is what the separate writes did."""

from __future__ import annotations

import pytest

from pycontainerd import namespaces
from pycontainerd.cri.daemon import NAMESPACE, Daemon, Services
from pycontainerd.descriptor import Descriptor
from pycontainerd.errdefs import AlreadyExists, InvalidArgument, NotFound
from pycontainerd.gc_scheduler import Scheduler
from pycontainerd.metadata.containers import ContainerStore
from pycontainerd.metadata.db import MetadataDB
from pycontainerd.metadata.images import Image, ImageStore
from pycontainerd.metadata.leases import LeaseStore
from pycontainerd.metadata.snapshots import SnapshotStore
from pycontainerd.records.containers import Container, Runtime
from pycontainerd.snapshots.native import NativeSnapshotter
from pycontainerd.typeurl import AnyValue


class FakeExchange:
    def __init__(self):
        self.topics = []

    def publish(self, topic, event, namespace=None):
        self.topics.append(topic)


@pytest.fixture
def parts(tmp_path):
    db = MetadataDB(tmp_path / "meta")
    backend = NativeSnapshotter(tmp_path / "native")
    exchange = FakeExchange()
    snapshots = SnapshotStore(db, "native", backend, exchange)
    gc = Scheduler(db, {"snapshotter/native": snapshots.sweep})
    snapshots.gc = gc
    leases = LeaseStore(db, gc)
    services = Services(containers=ContainerStore(db, exchange), images=ImageStore(db, exchange), content=None,
                        leases=leases, snapshots={"native": snapshots}, differ=None, tasks=None,
                        exchange=exchange, gc=gc)
    yield Daemon(services, snapshotter="native"), db, backend, exchange
    backend.close_sync()
    db.close()


class Commits:
    """Counts the write transactions of the stores, not those of the garbage collector
    (a collection a delete asked for may run at any await)."""

    def __init__(self, db: MetadataDB) -> None:
        self.count = 0
        real = db.update_sync

        def counted(fn):
            if "Scheduler" not in getattr(fn, "__qualname__", ""):
                self.count += 1
            return real(fn)

        db.update_sync = counted


TARGET = Descriptor(media_type="application/vnd.oci.image.manifest.v1+json", digest="sha256:" + "a" * 64, size=10)
NAMES = ["docker.io/library/x:1", "docker.io/library/x@sha256:" + "a" * 64, "sha256:" + "b" * 64]
"""An image's names as the CRI records them: reference, repo digest, id."""


def record(cid: str) -> Container:
    return Container(id=cid, runtime=Runtime("io.containerd.runc.v2"), spec=AnyValue("types.test/Spec", b"{}"),
                     snapshotter="native", snapshot_key=cid)


def leases_left(daemon: Daemon) -> list[str]:
    with namespaces.using(NAMESPACE):
        return [lease.id for lease in daemon.services.leases.list()]


def backend_names(backend) -> list[str]:
    return sorted(i.name for i in backend.walk_sync())


async def test_lease_block_writes_its_lease_with_the_snapshot_and_ends_it_with_the_record(parts):
    daemon, db, backend, exchange = parts
    commits = Commits(db)
    async with daemon.lease():
        await daemon.prepare("c1", "")
        assert len(leases_left(daemon)) == 1  # the snapshot is held from its first commit
        await daemon.create_container(record("c1"), last_in_lease=True)
    assert commits.count == 2  # containerd's client: lease, prepare, create, lease delete
    assert leases_left(daemon) == []
    assert exchange.topics == ["/snapshot/prepare", "/containers/create"]
    await daemon.services.gc.collect()
    assert await daemon.snapshot_exists("c1")  # the record holds it now
    assert len(backend_names(backend)) == 1


async def test_a_write_other_than_prepare_writes_the_lease_first(parts):
    daemon, _, _, _ = parts
    with namespaces.using(NAMESPACE):  # a layer the collector keeps
        await daemon.services.snapshots["native"].prepare("base", "", {"containerd.io/gc.root": "1"})
        await daemon.services.snapshots["native"].commit("layer", "base", {"containerd.io/gc.root": "1"})
    async with daemon.lease():
        await daemon.view("v1", "layer")  # an image volume's view: the lease exists first
        assert len(leases_left(daemon)) == 1
    assert leases_left(daemon) == []


async def test_failed_prepare_leaves_no_lease(parts):
    daemon, _, backend, _ = parts
    with pytest.raises(NotFound, match="parent"):
        async with daemon.lease():
            await daemon.prepare("c1", "no-such-parent")
    assert leases_left(daemon) == []
    assert backend_names(backend) == []


async def test_failed_record_leaves_the_lease_to_the_block_end_and_the_snapshot_to_the_collector(parts):
    daemon, _, backend, _ = parts
    async with daemon.lease():
        await daemon.prepare("c1", "")
        await daemon.create_container(record("c1"), last_in_lease=True)
    with pytest.raises(AlreadyExists):
        async with daemon.lease():
            await daemon.prepare("c2", "")
            await daemon.create_container(record("c1"), last_in_lease=True)
    assert leases_left(daemon) == []
    await daemon.services.gc.collect()
    assert not await daemon.snapshot_exists("c2")
    assert len(backend_names(backend)) == 1


async def test_container_and_snapshot_go_in_one_commit_and_twice_is_fine(parts):
    daemon, db, backend, exchange = parts
    async with daemon.lease():
        await daemon.prepare("c1", "")
        await daemon.create_container(record("c1"), last_in_lease=True)
    exchange.topics.clear()
    commits = Commits(db)
    await daemon.delete_container_and_snapshot("c1", "c1")
    assert commits.count == 1
    assert exchange.topics == ["/containers/delete", "/snapshot/remove"]
    with pytest.raises(NotFound):
        await daemon.get_container("c1")
    assert not await daemon.snapshot_exists("c1")
    await daemon.delete_container_and_snapshot("c1", "c1")
    assert exchange.topics == ["/containers/delete", "/snapshot/remove"]
    await daemon.services.gc.collect()
    assert backend_names(backend) == []


async def test_every_name_of_an_image_goes_in_one_commit(parts):
    daemon, db, _, exchange = parts
    with namespaces.using(NAMESPACE):
        for name in NAMES:
            await daemon.services.images.create(Image(name=name, target=TARGET))
    exchange.topics.clear()
    commits = Commits(db)
    await daemon.delete_images([*NAMES, "docker.io/library/gone:1"], sync=True)
    assert commits.count == 1
    assert exchange.topics == ["/images/delete"] * 3
    assert await daemon.list_images() == []
    await daemon.delete_images(NAMES, sync=True)  # idempotent, no events
    assert exchange.topics == ["/images/delete"] * 3


async def test_a_pulled_image_is_recorded_under_every_name_in_one_commit(parts):
    daemon, db, _, exchange = parts
    with namespaces.using(NAMESPACE):
        await daemon.services.images.create(Image(name=NAMES[0], target=TARGET))  # what the puller made
    exchange.topics.clear()
    commits = Commits(db)
    managed = {"io.cri-containerd.image": "managed"}
    await daemon.put_images([Image(name=n, target=TARGET, labels=managed) for n in NAMES])
    assert commits.count == 1
    assert exchange.topics == ["/images/update", "/images/create", "/images/create"]
    assert {i.name: dict(i.labels) for i in await daemon.list_images()} == {n: managed for n in NAMES}
    with pytest.raises(InvalidArgument):  # nothing of a batch with a bad name is written
        await daemon.put_images([Image(name="docker.io/library/y:1", target=TARGET), Image(name="", target=TARGET)])
    assert len(await daemon.list_images()) == 3
