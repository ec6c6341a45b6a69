"""``io.containerd.differ.v1.walking``: apply and compare layers over the content store.

Like containerd's (which takes the content store from the metadata plugin), it builds its
own namespaced view over the metadata and the local blob store — stateless wrappers, so
it shares everything with the content service."""

from pycontainerd.diff.walking import WalkingDiffer
from pycontainerd.metadata.content import ContentStore
from pycontainerd.plugin import PluginType, Registration


def init(ic):
    content = ContentStore(
        ic.get_single(PluginType.METADATA),
        ic.get(PluginType.CONTENT, "content"),
        ic.get_single(PluginType.EVENT),
        gc=ic.get_all(PluginType.GC).get("scheduler"),
    )
    ic.plugin.exports["tmp"] = str(ic.state)
    return WalkingDiffer(content, ic.state)


registration = Registration(
    type=PluginType.DIFF,
    id="walking",
    requires=(PluginType.METADATA, PluginType.CONTENT, PluginType.EVENT, PluginType.GC),
    init=init,
)
