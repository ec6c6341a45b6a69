"""``ListImages`` (and ``StreamImages``): every runnable image of namespace ``k8s.io`` — also
those recorded through the containerd API (``ctr -n k8s.io images pull``) — as one entry
per image id with all its repo tags and digests; a filter image narrows it to that image."""

from __future__ import annotations

from collections.abc import AsyncIterator

from ...api.cri.runtime.v1 import api_pb2 as cri
from ...memo import Memo
from ..images import ResolvedImage
from ..service import CRIService


_PBS: Memo[cri.Image] = Memo(1024)
"""Each image's message by what it is made of (kubelet asks for the same ones every few
seconds); the replies that take one copy it, so a kept message is never changed."""


def image_pb(svc: CRIService, resolved: ResolvedImage, names: list[str]) -> cri.Image:
    sandbox = svc.config.sandbox_image
    return _PBS.get((resolved.id, resolved.size, tuple(names), sandbox),
                    lambda: _image_pb(svc, resolved, names, sandbox))


def _image_pb(svc: CRIService, resolved: ResolvedImage, names: list[str], sandbox: str) -> cri.Image:
    tags, digests = svc.images.split_references(names)
    out = cri.Image(id=resolved.id, repo_tags=tags, repo_digests=digests, size=resolved.size,
                    spec=cri.ImageSpec(image=resolved.id))
    user = ((resolved.config.get("config") or {}).get("User") or "").split(":", 1)[0]
    if user:
        if user.isdigit():
            out.uid.value = int(user)
        else:
            out.username = user
    out.pinned = any(n == sandbox or n.endswith("/" + sandbox) for n in names) or sandbox in tags
    return out


async def _images(svc: CRIService, f: cri.ImageFilter | None) -> list[cri.Image]:
    if f is not None and f.image.image:
        found = await svc.images.local_image(f.image.image)
        return [image_pb(svc, *found)] if found else []
    images = await svc.images.cri_images()
    return [image_pb(svc, r, names) for r, names in sorted(images.values(), key=lambda x: x[0].id)]


async def list_images(svc: CRIService, req: cri.ListImagesRequest) -> cri.ListImagesResponse:
    return cri.ListImagesResponse(images=await _images(svc, req.filter if req.HasField("filter") else None))


async def stream_images(svc: CRIService, req: cri.StreamImagesRequest) -> AsyncIterator[cri.StreamImagesResponse]:
    from ..filters import chunks

    for chunk in chunks(await _images(svc, req.filter if req.HasField("filter") else None)):
        yield cri.StreamImagesResponse(images=chunk)
