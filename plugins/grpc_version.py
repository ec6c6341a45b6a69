"""``io.containerd.grpc.v1.version``: the Version gRPC service."""

from pycontainerd.plugin import PluginType, Registration
from pycontainerd.services.version import VersionServicer

registration = Registration(type=PluginType.GRPC, id="version", init=lambda ic: VersionServicer())
