"""``io.containerd.service.v1.leases-service``: leases over metadata, with GC on delete."""

from pycontainerd.metadata.leases import LeaseStore
from pycontainerd.plugin import PluginType, Registration


def init(ic):
    return LeaseStore(ic.get_single(PluginType.METADATA), ic.get_all(PluginType.GC).get("scheduler"))


registration = Registration(
    type=PluginType.SERVICE, id="leases-service", requires=(PluginType.METADATA, PluginType.GC), init=init
)
