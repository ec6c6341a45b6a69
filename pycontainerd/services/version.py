"""``containerd.services.version.v1.Version``: the daemon's version and revision."""

from __future__ import annotations

from google.protobuf import empty_pb2

from ..api.services.version.v1 import version_pb2, version_pb2_grpc
from ..version import REVISION, VERSION


class VersionServicer(version_pb2_grpc.VersionServicer):
    service_names = ("containerd.services.version.v1.Version",)

    def add_to_server(self, server) -> None:
        version_pb2_grpc.add_VersionServicer_to_server(self, server)

    async def Version(self, request: empty_pb2.Empty, context) -> version_pb2.VersionResponse:
        return version_pb2.VersionResponse(version=VERSION, revision=REVISION)
