"""``RemoveImage``: every name of the image (tags, digests, id) is deleted from namespace
``k8s.io``; content and snapshots are collected before it returns (the last name's delete is
synchronous, as containerd's). Idempotent: an image that is
not here is success."""

from __future__ import annotations

from ...api.cri.runtime.v1 import api_pb2 as cri
from ..service import CRIService


async def remove_image(svc: CRIService, req: cri.RemoveImageRequest) -> cri.RemoveImageResponse:
    found = await svc.images.local_image(req.image.image)
    if found is not None:
        _, names = found
        for i, name in enumerate(names):  # the last name synchronously, as containerd: the space is free on return
            await svc.daemon.delete_image(name, sync=i == len(names) - 1)
    return cri.RemoveImageResponse()
