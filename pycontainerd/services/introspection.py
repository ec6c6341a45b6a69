"""``containerd.services.introspection.v1.Introspection``: plugins and server identity."""

from __future__ import annotations

from google.rpc import code_pb2, status_pb2

from .. import introspection
from ..api.services.introspection.v1 import introspection_pb2 as pb
from ..api.services.introspection.v1 import introspection_pb2_grpc
from ..api.types import platform_pb2
from ..errdefs import ContainerdError
from ..plugin import PluginSet


def _init_err(exc: BaseException | None) -> status_pb2.Status | None:
    if exc is None:
        return None
    code = getattr(code_pb2, exc.code, code_pb2.UNKNOWN) if isinstance(exc, ContainerdError) else code_pb2.UNKNOWN
    return status_pb2.Status(code=code, message=str(exc))


class IntrospectionServicer(introspection_pb2_grpc.IntrospectionServicer):
    service_names = ("containerd.services.introspection.v1.Introspection",)

    def __init__(self, plugins: PluginSet, server_uuid: str) -> None:
        self.plugins = plugins
        self.uuid = server_uuid

    def add_to_server(self, server) -> None:
        introspection_pb2_grpc.add_IntrospectionServicer_to_server(self, server)

    async def Plugins(self, request: pb.PluginsRequest, context) -> pb.PluginsResponse:
        out = []
        for info in introspection.list_plugins(self.plugins, list(request.filters)):
            out.append(
                pb.Plugin(
                    type=info.type,
                    id=info.id,
                    requires=info.requires,
                    platforms=[platform_pb2.Platform(**p) for p in info.platforms],
                    exports=info.exports,
                    capabilities=info.capabilities,
                    init_err=_init_err(info.error),
                )
            )
        return pb.PluginsResponse(plugins=out)

    async def Server(self, request, context) -> pb.ServerResponse:
        return pb.ServerResponse(uuid=self.uuid)
