"""``PullImage``: fetch and unpack the image (hosts from ``registry.config_path``,
credentials from the request's ``AuthConfig``) and record it in namespace ``k8s.io`` under
its reference, its repo digest and its id (``sha256:<config digest>``), each labelled
``io.cri-containerd.image=managed``. Returns the image id."""

from __future__ import annotations

from ...api.cri.runtime.v1 import api_pb2 as cri
from ...errdefs import InvalidArgument
from ..service import CRIService


async def pull_image(svc: CRIService, req: cri.PullImageRequest) -> cri.PullImageResponse:
    if not req.image.image:
        raise InvalidArgument("image reference is required")
    resolved = await svc.images.pull(req.image.image, req.auth if req.HasField("auth") else None)
    return cri.PullImageResponse(image_ref=resolved.id)
