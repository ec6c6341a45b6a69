"""``io.containerd.grpc.v1.introspection``: plugins and server UUID (initialised last, as it
reports on every other plugin)."""

from pycontainerd.introspection import server_uuid
from pycontainerd.plugin import ALL, PluginType, Registration
from pycontainerd.services.introspection import IntrospectionServicer


def init(ic):
    return IntrospectionServicer(ic.plugins, server_uuid(ic.root))


registration = Registration(type=PluginType.GRPC, id="introspection", requires=(ALL,), init=init)
