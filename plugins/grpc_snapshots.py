"""``io.containerd.grpc.v1.snapshots``: the Snapshots gRPC service."""

from pycontainerd.plugin import PluginType, Registration
from pycontainerd.services.snapshots import SnapshotsServicer

registration = Registration(
    type=PluginType.GRPC,
    id="snapshots",
    requires=(PluginType.SERVICE,),
    init=lambda ic: SnapshotsServicer(ic.get(PluginType.SERVICE, "snapshots-service")),
)
