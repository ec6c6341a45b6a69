"""``io.containerd.service.v1.snapshots-service``: every loaded snapshotter seen through the
namespaced metadata layer, as ``{name: SnapshotStore}``; each store's sweeper is registered
on the garbage collector, which then removes backend snapshots no namespace references."""

from pycontainerd.metadata.snapshots import SnapshotStore
from pycontainerd.plugin import PluginType, Registration


def init(ic):
    db = ic.get_single(PluginType.METADATA)
    exchange = ic.get_single(PluginType.EVENT)
    gc = ic.get_all(PluginType.GC).get("scheduler")
    stores = {}
    for name, backend in ic.get_all(PluginType.SNAPSHOTTER).items():
        store = SnapshotStore(db, name, backend, exchange, gc)
        if gc is not None:
            gc.add_sweeper(f"snapshotter/{name}", store.sweep)
        stores[name] = store
    return stores


registration = Registration(
    type=PluginType.SERVICE,
    id="snapshots-service",
    requires=(PluginType.METADATA, PluginType.SNAPSHOTTER, PluginType.EVENT, PluginType.GC),
    init=init,
)
