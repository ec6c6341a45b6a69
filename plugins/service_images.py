"""``io.containerd.service.v1.images-service``: the image store over metadata."""

from pycontainerd.metadata.images import ImageStore
from pycontainerd.plugin import PluginType, Registration


def init(ic):
    return ImageStore(ic.get_single(PluginType.METADATA), ic.get_single(PluginType.EVENT))


registration = Registration(
    type=PluginType.SERVICE, id="images-service", requires=(PluginType.METADATA, PluginType.EVENT), init=init
)
