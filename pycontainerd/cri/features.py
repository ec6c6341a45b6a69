"""What an OCI runtime can do, from ``<runtime> features`` (runtime-spec's features document).

containerd's CRI plugin asks the OCI runtime once before it advertises recursive read-only
mounts: the runtime must list the ``rro`` mount option and the kernel must have
``mount_setattr`` (Linux 5.12), which runc uses for it. The answer is cached per binary. A
runtime without a ``features`` command, or one that fails, supports none of the optional
features."""

from __future__ import annotations

import asyncio
import ctypes
import errno
import functools
import json
from typing import Any

from ..log import get_logger
from .config import CRIConfig

log = get_logger(__name__)

RRO_OPTION = "rro"
RUNC_RUNTIME_PREFIX = "io.containerd.runc."
SYS_MOUNT_SETATTR = 442     # one number on every architecture (syscalls from 424 on are shared)
_features: dict[str, dict[str, Any]] = {}


async def oci_features(binary: str) -> dict[str, Any]:
    """The parsed ``features`` output of ``binary`` (``{}`` if it has none); run once."""
    if binary in _features:
        return _features[binary]
    found: dict[str, Any] = {}
    try:
        proc = await asyncio.create_subprocess_exec(binary, "features", stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        if proc.returncode == 0:
            found = json.loads(out)
        else:
            log.warning("oci runtime has no features command", binary=binary, error=err.decode(errors="replace"))
    except (OSError, ValueError) as exc:
        log.warning("cannot read oci runtime features", binary=binary, error=str(exc))
    if not isinstance(found, dict):
        found = {}
    _features[binary] = found
    return found


@functools.cache
def kernel_supports_rro() -> bool:
    """Whether the kernel has ``mount_setattr``: a call with a bad fd fails with something
    other than ENOSYS when it does."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(SYS_MOUNT_SETATTR, -1, b"", 0, None, 0) == 0:
        return True
    return ctypes.get_errno() != errno.ENOSYS


@functools.cache
def _idmap_supported(path: str) -> bool:
    from ..sysutil import idmap

    return idmap.supported(path)


async def supports_user_namespaces(config: CRIConfig, handler: str, snapshotter: str, snapshotter_root: str) -> bool:
    """Whether pods of runtime ``handler`` can have their own user namespace: a runc runtime
    (any runc runs a spec with a user namespace) and an overlayfs snapshotter whose
    filesystem the kernel can id-map (the pod's rootfs layers are id-mapped, see
    :mod:`pycontainerd.sysutil.idmap`)."""
    _, entry = config.runtime(handler)
    if not entry.runtime_type.startswith(RUNC_RUNTIME_PREFIX) or snapshotter != "overlayfs" or not snapshotter_root:
        return False
    return await asyncio.to_thread(_idmap_supported, snapshotter_root)


async def supports_rro(config: CRIConfig, handler: str) -> bool:
    """Whether runtime ``handler`` (``""``: the default) can make recursive read-only mounts."""
    _, entry = config.runtime(handler)
    if not entry.runtime_type.startswith(RUNC_RUNTIME_PREFIX):
        return False
    binary = entry.options.get("BinaryName") or "runc"
    return RRO_OPTION in ((await oci_features(binary)).get("mountOptions") or []) and kernel_supports_rro()


__all__ = ["kernel_supports_rro", "oci_features", "supports_rro", "supports_user_namespaces"]
