"""``RemoveImage``: every name of the image (tags, digests, id) is deleted from namespace
``k8s.io``; content and snapshots are collected afterwards. Idempotent: an image that is
not here is success."""

from __future__ import annotations

from ...api.cri.runtime.v1 import api_pb2 as cri


async def remove_image(c, req: cri.RemoveImageRequest) -> cri.RemoveImageResponse:
    await c.ensure_started()
    found = await c.local_image(req.image.image)
    if found is not None:
        _, names = found
        for name in names:
            await c.backend.delete_image(name)
    return cri.RemoveImageResponse()
