"""``io.containerd.grpc.v1.tasks``: the Tasks gRPC service."""

from pycontainerd.plugin import PluginType, Registration
from pycontainerd.services.tasks import TasksServicer

registration = Registration(
    type=PluginType.GRPC,
    id="tasks",
    requires=(PluginType.SERVICE,),
    init=lambda ic: TasksServicer(ic.get(PluginType.SERVICE, "tasks-service")),
)
