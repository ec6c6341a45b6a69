"""What an OCI runtime can do, from ``<runtime> features`` (runtime-spec's features document).

containerd's CRI plugin asks the OCI runtime once before it advertises recursive read-only
mounts (``rro``): the answer is cached per binary. A runtime without a ``features`` command, or
one that fails, supports none of the optional features."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from ..log import get_logger
from .config import CRIConfig

log = get_logger(__name__)

RRO_OPTION = "rro"
RUNC_RUNTIME_PREFIX = "io.containerd.runc."
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


async def supports_rro(config: CRIConfig, handler: str) -> bool:
    """Whether runtime ``handler`` (``""``: the default) can make recursive read-only mounts."""
    _, entry = config.runtime(handler)
    if not entry.runtime_type.startswith(RUNC_RUNTIME_PREFIX):
        return False
    binary = entry.options.get("BinaryName") or "runc"
    return RRO_OPTION in ((await oci_features(binary)).get("mountOptions") or [])


__all__ = ["oci_features", "supports_rro"]
