"""``ImageStatus``: the image a reference, an id or an id prefix names; an image that is
not here is an empty response (not an error). Verbose: the image config and chain id as
JSON under ``info``."""

from __future__ import annotations

import json

from ...api.cri.runtime.v1 import api_pb2 as cri
from ..service import CRIService
from .image_list import image_pb


async def image_status(svc: CRIService, req: cri.ImageStatusRequest) -> cri.ImageStatusResponse:
    found = await svc.images.local_image(req.image.image)
    if found is None:
        return cri.ImageStatusResponse()
    resolved, names = found
    resp = cri.ImageStatusResponse(image=image_pb(svc, resolved, names))
    if req.verbose:
        resp.info["info"] = json.dumps({"imageSpec": resolved.config, "chainID": resolved.chain_id,
                                        "manifestDigest": resolved.manifest_digest,
                                        "target": resolved.record.target.digest, "size": resolved.size})
    return resp
