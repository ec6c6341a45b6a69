"""Image references: ``[domain[:port]/]path[:tag][@digest]``, parsed and normalised like
docker's ``reference`` package as containerd vendors it (``reference/docker``).

``parse_normalized("busybox")`` gives ``docker.io/library/busybox:latest``: a first
component without ``.``/``:`` that is not ``localhost`` is a path, not a domain; the
default domain is ``docker.io`` (``index.docker.io`` is an alias) and its single-component
names live under ``library/``; a reference with neither tag nor digest gets ``latest``.
Anything malformed raises :class:`~pycontainerd.errdefs.InvalidArgument`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pycontainerd.descriptor import parse_digest
from pycontainerd.errdefs import InvalidArgument, quote

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
DEFAULT_REGISTRY_HOST = "registry-1.docker.io"
OFFICIAL_REPO_PREFIX = "library"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

_ALNUM = r"[a-z0-9]+"
# docker writes ``[-]*``; an empty separator adds nothing to ``[a-z0-9]+`` and makes Python's
# backtracking engine exponential on a non-match (Go's RE2 is linear), so require one dash
_SEPARATOR = r"(?:[._]|__|-+)"
_NAME_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_NAME = rf"(?:{_DOMAIN}/)?{_NAME_COMPONENT}(?:/{_NAME_COMPONENT})*"

_REFERENCE_RE = re.compile(rf"^({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?$", re.ASCII)
_ANCHORED_NAME_RE = re.compile(rf"^(?:({_DOMAIN})/)?({_NAME_COMPONENT}(?:/{_NAME_COMPONENT})*)$", re.ASCII)
_REFERENCE_LENGTH_MAX = NAME_TOTAL_LENGTH_MAX + 1 + 128 + 1 + 7 + 128  # name:tag@sha512:hex
_IDENTIFIER_RE = re.compile(r"^[a-f0-9]{64}$")
_TAG_RE = re.compile(rf"^{_TAG}$", re.ASCII)


@dataclass(frozen=True)
class Reference:
    """A parsed reference. ``domain`` may be ``""`` only for :func:`parse` of a bare path."""

    domain: str
    path: str
    tag: str = ""
    digest: str = ""

    @property
    def name(self) -> str:
        """``domain/path`` (containerd's *locator*)."""
        return f"{self.domain}/{self.path}" if self.domain else self.path

    locator = name

    @property
    def hostname(self) -> str:
        """The domain as written (``docker.io``, ``127.0.0.1:5000``)."""
        return self.domain

    @property
    def object(self) -> str:
        """containerd's *object*: ``tag``, ``tag@digest`` or ``@digest`` (``""`` if neither)."""
        if self.digest:
            return f"{self.tag}@{self.digest}"
        return self.tag

    def __str__(self) -> str:
        s = self.name
        if self.tag:
            s += f":{self.tag}"
        if self.digest:
            s += f"@{self.digest}"
        return s

    def with_tag(self, tag: str) -> Reference:
        if not _TAG_RE.match(tag):
            raise InvalidArgument(f"invalid tag {quote(tag)}")
        return Reference(self.domain, self.path, tag, "")

    def with_digest(self, digest: str) -> Reference:
        parse_digest(digest)
        return Reference(self.domain, self.path, self.tag, digest)

    def familiar(self) -> str:
        """The short form docker shows: ``busybox:latest``, ``user/app``, ``host:5000/x``."""
        name = self.name
        if self.domain == DEFAULT_DOMAIN:
            name = self.path
            parts = name.split("/")
            if len(parts) == 2 and parts[0] == OFFICIAL_REPO_PREFIX:
                name = parts[1]
        return str(Reference("", name, self.tag, self.digest))


def parse(ref: str) -> Reference:
    """Parse ``ref`` as written, without adding a default domain, ``library/`` or a tag.

    Raises InvalidArgument for an empty, malformed, upper-case or too long reference, or
    a digest with an unsupported algorithm or wrong length.
    """
    if not isinstance(ref, str) or ref == "":
        raise InvalidArgument("invalid reference format: repository name must have at least one component")
    if "://" in ref:
        raise InvalidArgument(f"invalid reference {quote(ref)}: a reference has no scheme")
    if len(ref) > _REFERENCE_LENGTH_MAX:
        raise InvalidArgument(f"invalid reference: longer than {_REFERENCE_LENGTH_MAX} characters")
    m = _REFERENCE_RE.match(ref)
    if m is None:
        if _REFERENCE_RE.match(ref.lower()):
            raise InvalidArgument(f"invalid reference format {quote(ref)}: repository name must be lowercase")
        raise InvalidArgument(f"invalid reference format {quote(ref)}")
    name, tag, digest = m.group(1), m.group(2) or "", m.group(3) or ""
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidArgument(
            f"invalid reference {quote(ref)}: repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters"
        )
    nm = _ANCHORED_NAME_RE.match(name)
    assert nm is not None  # implied by _REFERENCE_RE
    domain, path = nm.group(1) or "", nm.group(2)
    if digest:
        try:
            parse_digest(digest)
        except InvalidArgument as exc:
            raise InvalidArgument(f"invalid reference {quote(ref)}: {exc.context}") from exc
    return Reference(domain, path, tag, digest)


def _split_docker_domain(name: str) -> tuple[str, str]:
    i = name.find("/")
    if i == -1 or (not any(c in name[:i] for c in ".:") and name[:i] != "localhost"):
        domain, remainder = DEFAULT_DOMAIN, name
    else:
        domain, remainder = name[:i], name[i + 1 :]
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = f"{OFFICIAL_REPO_PREFIX}/{remainder}"
    return domain, remainder


def parse_normalized(ref: str, *, default_tag: bool = True) -> Reference:
    """Parse a reference as docker and the CRI do (``ParseDockerRef``): fill in the
    default domain and ``library/``; add ``latest`` when there is neither tag nor digest
    (unless ``default_tag`` is false); a reference with both keeps only the digest.

    Raises InvalidArgument for malformed input, and for a bare 64-hex identifier (which
    names an image ID, not a repository).
    """
    if not isinstance(ref, str) or ref == "":
        raise InvalidArgument("invalid reference format: repository name must have at least one component")
    if _IDENTIFIER_RE.match(ref):
        raise InvalidArgument(f"invalid repository name ({ref}), cannot specify 64-byte hexadecimal strings")
    domain, remainder = _split_docker_domain(ref)
    remote = remainder.split("@", 1)[0].split(":", 1)[0]
    if remote.lower() != remote:
        raise InvalidArgument(f"invalid reference format {quote(ref)}: repository name must be lowercase")
    r = parse(f"{domain}/{remainder}")
    if r.tag and r.digest:
        return Reference(r.domain, r.path, "", r.digest)
    if default_tag and not r.tag and not r.digest:
        return Reference(r.domain, r.path, DEFAULT_TAG, "")
    return r


def normalize(ref: str) -> str:
    """``str(parse_normalized(ref))``: ``busybox`` → ``docker.io/library/busybox:latest``."""
    return str(parse_normalized(ref))


def registry_host(domain: str) -> str:
    """The host to contact for a reference's domain (``docker.io`` → ``registry-1.docker.io``)."""
    return DEFAULT_REGISTRY_HOST if domain == DEFAULT_DOMAIN else domain
