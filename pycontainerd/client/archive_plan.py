"""What to import from an image archive, decided before anything is uploaded.

A tar's members come in any order: ``ctr images export`` and ``docker save`` write
``index.json``/``manifest.json`` last, after the blobs. So a single streaming pass cannot know
whether a big member belongs to an image before it has read it. Two cases:

* a **seekable** source (a file): :func:`scan` first reads the tar headers only (the data of
  every member is skipped by seeking; a compressed tar is decompressed once, nothing is
  uploaded), then the index or manifest and the manifests it names. It refuses at once an
  archive that has neither (``not an image archive``), names a member that the archive ends
  inside (a truncated export), and returns the set of members the images need — the import
  pass then uploads only those.
* a **stream** (stdin): members are uploaded only when their name fits an OCI layout
  (``blobs/<alg>/<encoded>``) or a docker archive (``<hex>.json``, ``<hex>/layer.tar``, …), and,
  once ``manifest.json`` has been read, only when it names them. A tar of other files therefore
  uploads nothing before ``not an image archive``.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import tarfile
import zlib
from dataclasses import dataclass
from typing import IO

from .. import imagespec
from ..descriptor import Descriptor
from ..archive.tarstream import next_member
from ..errdefs import InvalidArgument
from ..images.walk import children
from ..remotes import mediatypes

METADATA = frozenset({"index.json", "manifest.json", "oci-layout", "repositories"})
"""The archive's own files (read, never uploaded as such)."""

_BLOB = re.compile(r"blobs/[a-z0-9]+(?:[.+_-][a-z0-9]+)*/[a-zA-Z0-9=_-]+")
_DOCKER = re.compile(r"[0-9a-f]+(?:\.json|\.tar|/(?:layer\.tar|json|VERSION))")

DATA_ERRORS = (tarfile.TarError, EOFError, zlib.error, OSError)
"""What reading a damaged or truncated (possibly compressed) tar raises."""


def is_blob_path(name: str) -> bool:
    return _BLOB.fullmatch(name) is not None


def plausible(name: str) -> bool:
    """Whether a member named ``name`` can be part of an OCI layout or a docker archive."""
    return name in METADATA or is_blob_path(name) or _DOCKER.fullmatch(name) is not None


def blob_path(digest: str) -> str:
    alg, _, encoded = digest.partition(":")
    return f"blobs/{alg}/{encoded}"


def not_a_tar() -> InvalidArgument:
    return InvalidArgument("not an image archive: not a tar file (plain, gzip, bzip2 or xz)")


def damaged(member: str, exc: BaseException) -> InvalidArgument:
    """The archive cannot be read inside (or right after) ``member``."""
    return InvalidArgument(f"{member}: the archive ends or is damaged inside this member "
                           f"(a truncated or corrupt file?): {_reason(exc)}")


READ_ERRORS = (InvalidArgument, *DATA_ERRORS)
"""What reading the next member can raise (``next_member`` says ``corrupt tar`` as InvalidArgument)."""


def unreadable(last: str, exc: BaseException) -> InvalidArgument:
    """The next member after ``last`` (empty: none read yet) could not be read."""
    cause = exc.__cause__ if isinstance(exc, InvalidArgument) and exc.__cause__ else exc
    return damaged(last, cause) if last else not_a_tar()


def not_an_image() -> InvalidArgument:
    return InvalidArgument("not an image archive: no index.json (OCI layout) or manifest.json (docker)")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, InvalidArgument) and exc.context:  # its words, without ": invalid argument"
        return exc.context
    return str(exc) or type(exc).__name__


@dataclass
class Plan:
    """What :func:`scan` found: the members to upload (archive paths)."""

    wanted: frozenset[str]


def docker_paths(doc: list) -> set[str]:
    """The archive paths a docker ``manifest.json`` names (configs and layers)."""
    out: set[str] = set()
    for entry in doc:
        if isinstance(entry, dict):
            for path in [entry.get("Config"), *(entry.get("Layers") or [])]:
                if isinstance(path, str):
                    out.add(normal_name(path))
    return out


def normal_name(name: str) -> str:
    name = posixpath.normpath(name.lstrip("/"))
    return "" if name in (".", "") else name


def scan(source: IO[bytes]) -> Plan | None:
    """Pass one over a seekable ``source`` (see module doc); None for a stream. Leaves the
    source where it was.

    Raises:
        InvalidArgument: not a tar; no index.json or manifest.json (``not an image
            archive``); a member the archive ends inside; a bad index or manifest.
    """
    try:
        if not source.seekable():
            return None
        start = source.tell()
    except (OSError, ValueError, AttributeError):
        return None
    try:
        end: int | None = os.fstat(source.fileno()).st_size
    except (OSError, ValueError, AttributeError):
        end = None  # an in-memory file: no size to compare with
    try:
        return _scan(source, end)
    finally:
        source.seek(start)


def _scan(source: IO[bytes], end: int | None) -> Plan:
    try:
        tf = tarfile.open(fileobj=source, mode="r:*")
    except DATA_ERRORS as exc:
        raise not_a_tar() from exc
    members: dict[str, tarfile.TarInfo] = {}
    last = ""
    with tf:
        compressed = tf.fileobj is not source
        try:
            member = None
            while (member := next_member(tf, member)) is not None:  # Go's reader's end rules
                name = normal_name(member.name)
                last = name or member.name
                if member.isreg() and name:
                    members[name] = member
                    if not compressed and end is not None and member.offset_data + member.size > end:
                        break
        except READ_ERRORS as exc:
            raise unreadable(last, exc) from exc
        if member is not None:  # the loop stopped at a member the file ends inside
            raise damaged(last, EOFError(f"{member.size} bytes announced, "
                                         f"{max(end - member.offset_data, 0)} present"))

        def read(name: str, what: str) -> bytes:
            member = members[name]
            if member.size > imagespec.MAX_MANIFEST_SIZE:
                raise InvalidArgument(f"{what} {name} is larger than {imagespec.MAX_MANIFEST_SIZE} bytes")
            try:
                fobj = tf.extractfile(member)
                return fobj.read() if fobj is not None else b""
            except DATA_ERRORS as exc:
                raise damaged(name, exc) from exc

        if "index.json" in members:
            index = imagespec.parse_json(read("index.json", "index"), "index.json")
            wanted = set()
            todo = imagespec.index_children(index)
            while todo:
                desc: Descriptor = todo.pop()
                path = blob_path(desc.digest)
                if path in wanted or path not in members:
                    continue  # a platform the export left out: not in the archive, not needed
                wanted.add(path)
                if mediatypes.is_manifest(desc.media_type) or mediatypes.is_index(desc.media_type):
                    doc = imagespec.parse_json(read(path, "manifest"), f"manifest {desc.digest}")
                    todo.extend(children(desc, doc))
            return Plan(frozenset(wanted))
        if "manifest.json" in members:
            try:
                doc = json.loads(read("manifest.json", "manifest"))
            except ValueError as exc:
                raise InvalidArgument(f"manifest.json is not valid JSON: {exc}") from exc
            if not isinstance(doc, list):
                raise InvalidArgument("manifest.json is not a JSON list")
            return Plan(frozenset(p for p in docker_paths(doc) if p in members))
        raise not_an_image()
