"""``Version``: who we are."""

from __future__ import annotations

from ...api.cri.runtime.v1 import api_pb2 as cri
from ...version import VERSION
from ..service import CRIService

KUBE_API_VERSION = "0.1.0"
RUNTIME_NAME = "pycontainerd"
RUNTIME_API_VERSION = "v1"


async def version(svc: CRIService, req: cri.VersionRequest) -> cri.VersionResponse:
    return cri.VersionResponse(version=KUBE_API_VERSION, runtime_name=RUNTIME_NAME, runtime_version=VERSION,
                               runtime_api_version=RUNTIME_API_VERSION)
