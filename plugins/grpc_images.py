"""``io.containerd.grpc.v1.images``: the Images gRPC service."""

from pycontainerd.plugin import PluginType, Registration
from pycontainerd.services.images import ImagesServicer


def init(ic):
    gc = ic.get_all(PluginType.GC).get("scheduler")
    return ImagesServicer(ic.get(PluginType.SERVICE, "images-service"), gc)


registration = Registration(
    type=PluginType.GRPC, id="images", requires=(PluginType.SERVICE, PluginType.GC), init=init
)
