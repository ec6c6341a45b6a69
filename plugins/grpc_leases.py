"""``io.containerd.grpc.v1.leases``: the Leases gRPC service."""

from pycontainerd.plugin import PluginType, Registration
from pycontainerd.services.leases import LeasesServicer

registration = Registration(
    type=PluginType.GRPC,
    id="leases",
    requires=(PluginType.SERVICE,),
    init=lambda ic: LeasesServicer(ic.get(PluginType.SERVICE, "leases-service")),
)
