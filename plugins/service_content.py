"""``io.containerd.service.v1.content-service``: the namespaced content store (metadata
references over the local blob store), publishing ``/content/delete``; registers the
content sweeper on the garbage collector and asks it for a collection after deletes."""

from pycontainerd.metadata.content import ContentStore
from pycontainerd.plugin import PluginType, Registration


def init(ic):
    gc = ic.get_all(PluginType.GC).get("scheduler")
    store = ContentStore(
        ic.get_single(PluginType.METADATA),
        ic.get(PluginType.CONTENT, "content"),
        ic.get_single(PluginType.EVENT),
        gc=gc,
    )
    if gc is not None:
        gc.add_sweeper("content", store.sweep)
    return store


registration = Registration(
    type=PluginType.SERVICE,
    id="content-service",
    requires=(PluginType.METADATA, PluginType.CONTENT, PluginType.EVENT, PluginType.GC),
    init=init,
)
