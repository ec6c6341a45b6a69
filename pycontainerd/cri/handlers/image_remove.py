"""``RemoveImage``: every name of the image (tags, digests, id) is deleted from namespace
``k8s.io`` (in one transaction); content and snapshots are collected before it returns (the
delete is synchronous, as containerd's delete of the last name). Idempotent: an image that is
not here is success."""

from __future__ import annotations

from ...api.cri.runtime.v1 import api_pb2 as cri
from ..service import CRIService


async def remove_image(svc: CRIService, req: cri.RemoveImageRequest) -> cri.RemoveImageResponse:
    found = await svc.images.local_image(req.image.image)
    if found is not None:
        _, names = found
        await svc.daemon.delete_images(names, sync=True)  # the space is free on return, as containerd's
    return cri.RemoveImageResponse()
