"""``io.containerd.grpc.v1.namespaces``: the Namespaces gRPC service."""

from pycontainerd.plugin import PluginType, Registration
from pycontainerd.services.namespaces import NamespacesServicer

registration = Registration(
    type=PluginType.GRPC,
    id="namespaces",
    requires=(PluginType.SERVICE,),
    init=lambda ic: NamespacesServicer(ic.get(PluginType.SERVICE, "namespaces-service")),
)
