"""``io.containerd.service.v1.namespaces-service``: the namespace store over metadata."""

from pycontainerd.metadata.namespaces import NamespaceStore
from pycontainerd.plugin import PluginType, Registration


def init(ic):
    return NamespaceStore(ic.get_single(PluginType.METADATA), ic.get_single(PluginType.EVENT))


registration = Registration(
    type=PluginType.SERVICE,
    id="namespaces-service",
    requires=(PluginType.METADATA, PluginType.EVENT),
    init=init,
)
