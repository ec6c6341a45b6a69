"""OCI content descriptors and platforms: the core value types shared by remotes, content
and images.

A :class:`Descriptor` names a blob by media type, digest and size (OCI image-spec
``descriptor.md``); a :class:`Platform` says what an image runs on. Both are frozen; their
``to_dict``/``from_dict`` use the OCI JSON field names (``mediaType``, ``digest``, ``size``,
``annotations``, ``urls``, ``platform``), so they round-trip through manifests and indexes.

Digests are ``<algorithm>:<hex>``; :func:`parse_digest` accepts sha256 and sha512 (the
algorithms containerd registers) and raises :class:`~pycontainerd.errdefs.InvalidArgument`
for anything else.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pycontainerd.errdefs import InvalidArgument, quote

_DIGEST_HEX_LEN = {"sha256": 64, "sha512": 128}
_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")


def parse_digest(digest: str) -> tuple[str, str]:
    """Split and validate ``algorithm:hex``; InvalidArgument when malformed or unsupported."""
    if not isinstance(digest, str) or not _DIGEST_RE.match(digest):
        raise InvalidArgument(f"invalid digest {quote(digest)}: invalid checksum digest format")
    algorithm, hexpart = digest.split(":", 1)
    want = _DIGEST_HEX_LEN.get(algorithm)
    if want is None:
        raise InvalidArgument(f"invalid digest {quote(digest)}: unsupported digest algorithm")
    if len(hexpart) != want or not re.fullmatch(r"[a-f0-9]+", hexpart):
        raise InvalidArgument(f"invalid digest {quote(digest)}: invalid checksum digest length or characters")
    return algorithm, hexpart


def hasher_for(digest: str) -> Any:
    """A fresh ``hashlib`` object for ``digest``'s algorithm (validates ``digest``)."""
    algorithm, _ = parse_digest(digest)
    return hashlib.new(algorithm)


def digest_bytes(data: bytes, algorithm: str = "sha256") -> str:
    """``algorithm:hex`` of ``data``."""
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


@dataclass(frozen=True)
class Platform:
    """OCI platform. ``variant`` is ``""`` when absent; see :mod:`pycontainerd.remotes.platforms`
    for parsing, normalising and matching."""

    os: str
    architecture: str
    variant: str = ""
    os_version: str = ""
    os_features: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.os_version:
            d["os.version"] = self.os_version
        if self.os_features:
            d["os.features"] = list(self.os_features)
        if self.variant:
            d["variant"] = self.variant
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Platform:
        if not isinstance(d, Mapping):
            raise InvalidArgument("platform must be an object")
        if not isinstance(d.get("os.features") or (), (list, tuple)):
            raise InvalidArgument("platform os.features must be an array")
        return cls(
            os=str(d.get("os", "")),
            architecture=str(d.get("architecture", "")),
            variant=str(d.get("variant", "") or ""),
            os_version=str(d.get("os.version", "") or ""),
            os_features=tuple(str(f) for f in d.get("os.features") or ()),
        )

    def __str__(self) -> str:
        if not self.os:
            return "unknown"
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor.

    ``annotations`` and ``urls`` take part in equality but not in the hash (a descriptor is
    identified by media type, digest, size and platform).
    """

    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict, hash=False)
    urls: tuple[str, ...] = field(default=(), hash=False)
    platform: Platform | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.urls:
            d["urls"] = list(self.urls)
        if self.annotations:
            d["annotations"] = dict(self.annotations)
        if self.platform is not None:
            d["platform"] = self.platform.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Descriptor:
        """Build from OCI JSON; InvalidArgument for a missing/bad digest or size."""
        if not isinstance(d, Mapping):
            raise InvalidArgument("descriptor must be an object")
        digest = d.get("digest")
        parse_digest(digest)  # type: ignore[arg-type]
        size = d.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidArgument(f"descriptor {digest}: invalid size {size!r}")
        annotations = d.get("annotations") or {}
        if not isinstance(annotations, Mapping):
            raise InvalidArgument(f"descriptor {digest}: annotations must be an object")
        urls = d.get("urls") or ()
        if not isinstance(urls, (list, tuple)):
            raise InvalidArgument(f"descriptor {digest}: urls must be an array")
        platform = d.get("platform")
        return cls(
            media_type=str(d.get("mediaType", "") or ""),
            digest=digest,  # type: ignore[arg-type]
            size=size,
            annotations={str(k): str(v) for k, v in annotations.items()},
            urls=tuple(str(u) for u in urls),
            platform=Platform.from_dict(platform) if platform is not None else None,
        )

    # the names the metadata store uses for its records (same JSON shape)
    def to_json(self) -> dict[str, Any]:
        return self.to_dict()

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Descriptor:
        return cls.from_dict(d)
