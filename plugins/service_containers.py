"""``io.containerd.service.v1.containers-service``: container records over metadata."""

from pycontainerd.metadata.containers import ContainerStore
from pycontainerd.plugin import PluginType, Registration


def init(ic):
    return ContainerStore(ic.get_single(PluginType.METADATA), ic.get_single(PluginType.EVENT))


registration = Registration(
    type=PluginType.SERVICE, id="containers-service", requires=(PluginType.METADATA, PluginType.EVENT), init=init
)
