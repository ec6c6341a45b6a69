"""Content digests (OCI image-spec "Digests"): ``<algorithm>:<encoded>``.

Only ``sha256`` is supported for storing content (as containerd's local store); the
syntax check follows the spec's grammar so that a malformed string is refused with
``INVALID_ARGUMENT`` before it reaches a path or key.
"""

from __future__ import annotations

import hashlib
import re

from .errdefs import InvalidArgument, quote

_SHA256 = re.compile(r"^sha256:[a-f0-9]{64}$")
_GRAMMAR = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")


def validate(digest: str) -> str:
    """Return ``digest`` if it is a well-formed sha256 digest.

    Raises:
        InvalidArgument: malformed, or an algorithm other than sha256.
    """
    if _SHA256.match(digest or ""):
        return digest
    if _GRAMMAR.match(digest or "") and not digest.startswith("sha256:"):
        raise InvalidArgument(f"digest {quote(digest)}: unsupported digest algorithm")
    raise InvalidArgument(f"digest {quote(digest)}: invalid checksum digest format")


def hex_of(digest: str) -> str:
    """The encoded part of a validated digest (the file name under ``blobs/sha256``)."""
    return validate(digest).split(":", 1)[1]


def of_bytes(data: bytes) -> str:
    """The sha256 digest of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()
