"""``ImageFsInfo``: bytes and inodes used by the snapshots (image layers and container
layers) under the snapshotter's directory, measured by walking its ``snapshots`` dir (cached
for a few seconds). Like containerd, which sums the snapshots' usage, the snapshotter's own
metadata file is not counted: it only grows (LMDB never shrinks), also by a pull that failed
and left nothing behind."""

from __future__ import annotations

import asyncio
import os
import time

from ...api.cri.runtime.v1 import api_pb2 as cri
from ..service import CRIService

CACHE_SECONDS = 5.0


def disk_usage(root: str) -> tuple[int, int]:
    """``(bytes, inodes)`` used under ``root`` (hard links counted once)."""
    seen: set[tuple[int, int]] = set()
    used = 0
    for dirpath, _dirnames, filenames in os.walk(root):
        for path in [dirpath, *(os.path.join(dirpath, f) for f in filenames)]:
            try:
                st = os.lstat(path)
            except OSError:
                continue
            key = (st.st_dev, st.st_ino)
            if key not in seen:
                seen.add(key)
                used += st.st_blocks * 512
    return used, len(seen)


async def image_fs_info(svc: CRIService, req: cri.ImageFsInfoRequest) -> cri.ImageFsInfoResponse:
    root = svc.snapshotter_root
    cache = svc.fs_usage_cache
    hit = cache.get(root)
    if hit is None or time.monotonic() - hit[0] > CACHE_SECONDS:
        used, inodes = await asyncio.to_thread(disk_usage, os.path.join(root, "snapshots")) if root else (0, 0)
        hit = (time.monotonic(), used, inodes, time.time_ns())
        cache[root] = hit
    _, used, inodes, ts = hit
    usage = cri.FilesystemUsage(timestamp=ts, fs_id=cri.FilesystemIdentifier(mountpoint=root),
                                used_bytes=cri.UInt64Value(value=used), inodes_used=cri.UInt64Value(value=inodes))
    return cri.ImageFsInfoResponse(image_filesystems=[usage])
