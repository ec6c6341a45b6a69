"""``io.containerd.grpc.v1.diff``: the Diff gRPC service."""

from pycontainerd.plugin import PluginType, Registration
from pycontainerd.services.diff import DiffServicer

registration = Registration(
    type=PluginType.GRPC,
    id="diff",
    requires=(PluginType.SERVICE,),
    init=lambda ic: DiffServicer(ic.get(PluginType.SERVICE, "diff-service")),
)
