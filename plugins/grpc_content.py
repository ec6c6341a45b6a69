"""``io.containerd.grpc.v1.content``: the Content gRPC service."""

from pycontainerd.plugin import PluginType, Registration
from pycontainerd.services.content import ContentServicer

registration = Registration(
    type=PluginType.GRPC,
    id="content",
    requires=(PluginType.SERVICE,),
    init=lambda ic: ContentServicer(ic.get(PluginType.SERVICE, "content-service")),
)
