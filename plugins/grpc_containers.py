"""``io.containerd.grpc.v1.containers``: the Containers gRPC service."""

from pycontainerd.plugin import PluginType, Registration
from pycontainerd.services.containers import ContainersServicer

registration = Registration(
    type=PluginType.GRPC,
    id="containers",
    requires=(PluginType.SERVICE,),
    init=lambda ic: ContainersServicer(ic.get(PluginType.SERVICE, "containers-service")),
)
