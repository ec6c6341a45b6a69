"""Content digests (OCI image-spec "Digests"): ``<algorithm>:<encoded>``.

Only ``sha256`` is supported for storing content (as containerd's local store); the
syntax check follows the spec's grammar so that a malformed string is refused with
``INVALID_ARGUMENT`` before it reaches a path or key.
"""

from __future__ import annotations

import hashlib
import re

from .errdefs import InvalidArgument, quote

ALGORITHM = "sha256"
"""The one algorithm content is stored under (containerd's ``digest.Canonical``)."""
_ENCODED = re.compile(r"^[a-f0-9]{64}$")
_GRAMMAR = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
_KNOWN_ALGORITHMS = {"sha256", "sha384", "sha512"}  # valid per go-digest; only sha256 served


def problem(digest: str) -> str:
    """Why ``digest`` is not acceptable (go-digest's words), or ``""`` when it is."""
    algorithm, sep, encoded = (digest or "").partition(":")
    if not sep or not algorithm or not encoded:
        return "invalid checksum digest format"
    if algorithm != ALGORITHM:
        if algorithm in _KNOWN_ALGORITHMS or _GRAMMAR.match(digest):
            return "unsupported digest algorithm"
        return "invalid checksum digest format"
    if len(encoded) != 64:
        return "invalid checksum digest length"
    if not _ENCODED.match(encoded):
        return "invalid checksum digest format"
    return ""


def validate(digest: str) -> str:
    """Return ``digest`` if it is a well-formed sha256 digest.

    Raises:
        InvalidArgument: ``"<digest>" failed validation: <reason>``, reason as go-digest
            gives it (invalid checksum digest format / length, unsupported digest algorithm).
    """
    reason = problem(digest)
    if reason:
        raise InvalidArgument(f"{quote(digest)} failed validation: {reason}")
    return digest


def is_valid(digest: str) -> bool:
    """True if :func:`validate` accepts ``digest``."""
    return not problem(digest)


def hex_of(digest: str) -> str:
    """The encoded part of a validated digest (the file name under ``blobs/sha256``)."""
    return validate(digest).split(":", 1)[1]


def of_bytes(data: bytes) -> str:
    """The sha256 digest of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()
