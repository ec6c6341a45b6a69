"""Image volumes (KEP-4639, as containerd 2.1 serves them): a CRI ``Mount`` whose ``image``
is set mounts that image's root filesystem, read-only, at ``container_path``.

The image must be here already (the kubelet pulls it; NOT_FOUND otherwise). Each such mount
gets a read-only snapshot view of the image's chain, keyed ``<container id>-image-volume-<n>``
(``n``: the mount's index in the config), mounted under the container's root directory; the
mount's ``host_path`` becomes that directory (or the ``image_sub_path`` below it, resolved
inside the image) and ``image.image_ref`` the image id, so ``ContainerStatus`` reports it.
The container record carries a ``containerd.io/gc.ref.snapshot.<snapshotter>/...`` label for
each view: garbage collection keeps the view, and through its parent the image's layers, as
long as the container exists, whatever happens to the image record. The host mounts live in
the host's mount namespace and so outlast a daemon restart; ``release`` undoes it all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncio
import contextlib
import os

from ..api.cri.runtime.v1 import api_pb2 as cri
from ..errdefs import InvalidArgument, NotFound, quote
from ..log import get_logger
from ..mount import mount_all, unmount_all
from ..oci.user import dir_in_root

if TYPE_CHECKING:
    from .host import CRIHost

log = get_logger("cri")

GC_REF = "containerd.io/gc.ref.snapshot.{snapshotter}/image-volume-{index}"


def snapshot_key(cid: str, index: int) -> str:
    return f"{cid}-image-volume-{index}"


def mount_dir(svc: CRIHost, cid: str, index: int) -> str:
    return os.path.join(svc.container_root(cid), "image-volumes", str(index))


def is_image_mount(m: cri.Mount) -> bool:
    return m.HasField("image") and bool(m.image.image)


def check(m: cri.Mount) -> None:
    """containerd's checks of an image mount, before anything is made."""
    if m.host_path:
        raise InvalidArgument(f"hostpath must be empty while mount image: {quote(m.container_path)} "
                              f"has host path {quote(m.host_path)}")
    if not m.readonly:
        raise InvalidArgument(f"readonly must be true while mount image: mount of image "
                              f"{quote(m.image.image)} at {quote(m.container_path)}")


async def prepare(svc: CRIHost, cid: str, mounts) -> dict[str, str]:
    """Mount every image volume of ``mounts`` (a container config's, changed in place: each
    gets its ``host_path`` and ``image.image_ref``). Returns the GC labels the container record
    needs. On failure, what was made is undone before the error goes up."""
    labels: dict[str, str] = {}
    for m in mounts:
        if is_image_mount(m):
            check(m)
    try:
        for index, m in enumerate(mounts):
            if not is_image_mount(m):
                continue
            found = await svc.images.local_image(m.image.image)
            if found is None:
                raise NotFound(f"failed to resolve image {quote(m.image.image)} for the image volume at "
                               f"{quote(m.container_path)}: not found (pull it first)")
            image, _ = found
            await svc.images.ensure_unpacked(image)
            key = snapshot_key(cid, index)
            labels[GC_REF.format(snapshotter=svc.daemon.snapshotter, index=index)] = key
            view = await svc.daemon.view(key, image.chain_id)
            target = mount_dir(svc, cid, index)
            await asyncio.to_thread(_mount, view, target)
            host_path = target
            if m.image_sub_path:
                host_path = _sub_path(target, m.image_sub_path, m.image.image)
            m.host_path = host_path
            m.image.image_ref = image.id
    except BaseException:
        await release(svc, cid, mounts)
        raise
    return labels


def _mount(view, target: str) -> None:
    os.makedirs(target, mode=0o755, exist_ok=True)
    unmount_all(target)
    mount_all(view, target)


def _sub_path(target: str, sub: str, image: str) -> str:
    try:
        return dir_in_root(target, sub)
    except FileNotFoundError as exc:
        raise InvalidArgument(f"image volume sub path {quote(sub)} does not exist in image {quote(image)}") from exc
    except OSError as exc:
        raise InvalidArgument(f"image volume sub path {quote(sub)} in image {quote(image)}: "
                              f"{exc.strerror or exc}") from exc


async def release(svc: CRIHost, cid: str, mounts) -> None:
    """Unmount and remove every image volume of container ``cid`` (idempotent)."""
    for index, m in enumerate(mounts):
        if not is_image_mount(m):
            continue
        target = mount_dir(svc, cid, index)
        if os.path.isdir(target):
            await asyncio.to_thread(unmount_all, target)
            with contextlib.suppress(OSError):
                os.rmdir(target)
        await svc.daemon.remove_snapshot(snapshot_key(cid, index))


def unmount_orphan(container_dir: str) -> None:
    """Unmount the image volumes under a container directory no record knows (the daemon died
    mid-create); their views, held only by the create's lease, go with it."""
    vols = os.path.join(container_dir, "image-volumes")
    with contextlib.suppress(OSError):
        for name in os.listdir(vols):
            unmount_all(os.path.join(vols, name))


__all__ = ["check", "is_image_mount", "prepare", "release", "snapshot_key", "unmount_orphan"]
