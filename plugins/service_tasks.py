"""``io.containerd.service.v1.tasks-service``: tasks over container records and the runtime."""

from pycontainerd.metadata.containers import ContainerStore
from pycontainerd.plugin import PluginType, Registration
from pycontainerd.tasks import LocalTasks


def init(ic):
    containers = ContainerStore(ic.get_single(PluginType.METADATA), ic.get_single(PluginType.EVENT))
    return LocalTasks(containers, ic.get(PluginType.RUNTIME_V2, "task"))


registration = Registration(
    type=PluginType.SERVICE, id="tasks-service",
    requires=(PluginType.METADATA, PluginType.EVENT, PluginType.RUNTIME_V2), init=init,
)
