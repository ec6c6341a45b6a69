"""Fetch one manifest or blob by descriptor, as a verified async byte stream.

:meth:`Fetcher.fetch` opens the content (the descriptor's alternative ``urls`` first, as
containerd does for foreign layers, anonymously; then ``/manifests/<digest>`` for manifest
and index types, ``/blobs/<digest>`` otherwise, on each pull host) and returns a
:class:`BlobStream`. The stream counts and hashes what it yields: more bytes than
``desc.size`` fail at once, and at the end the size and digest must match the descriptor,
else :class:`~pycontainerd.remotes.errors.DigestMismatch` (``FAILED_PRECONDITION``).

Resuming: ``fetch(desc, offset=n)`` asks for ``Range: bytes=n-``; a registry that ignores
it (200) has its first ``n`` bytes skipped; a 206 whose ``Content-Range`` starts before ``n``
has the difference skipped, and one that starts after ``n`` or cannot be parsed is dropped
and the blob asked for again whole (then skipped to ``n``). The digest can only be checked
when the caller passes a ``hasher`` that has already seen the first ``n`` bytes; otherwise
only the size is. A connection that drops mid-stream is re-opened from the current offset,
transparently, as long as the attempts make progress: ``resume_attempts`` drops in a row at
the same offset give up with :class:`~pycontainerd.errdefs.Unavailable` naming the digest,
the offset and the cause.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx

from pycontainerd.descriptor import Descriptor, hasher_for
from pycontainerd.errdefs import NotFound, Unavailable, quote
from pycontainerd.log import get_logger
from pycontainerd.remotes import mediatypes
from pycontainerd.remotes.errors import DigestMismatch, UnexpectedStatus
from pycontainerd.remotes.reference import Reference
from pycontainerd.remotes.session import (
    Capability,
    RegistryHost,
    RegistrySession,
    repository_scope,
    unexpected_status,
)

log = get_logger("remotes")

MAX_MANIFEST_SIZE = 4 * 1048 * 1048
"""The largest manifest or index accepted (containerd's constant, sic)."""

CHUNK_SIZE = 1 << 16


class BlobStream:
    """Async iterator of the bytes of one descriptor, from ``offset`` on; verified (see
    module doc). Use ``async with`` or call :meth:`aclose` when not read to the end."""

    def __init__(
        self,
        fetcher: Fetcher,
        desc: Descriptor,
        offset: int,
        response: tuple[httpx.Response, int],
        hasher: Any | None,
        resume_attempts: int,
    ) -> None:
        self.desc = desc
        self.offset = offset
        self._fetcher = fetcher
        self._resp: httpx.Response | None = response[0]
        self._skip = response[1]
        self._iter: AsyncIterator[bytes] | None = None
        self._hasher = hasher
        self._resume_attempts = resume_attempts
        self._resume_left = resume_attempts
        self._resumed_at = -1  # the offset of the last resume
        self._done = False

    def __aiter__(self) -> BlobStream:
        return self

    async def __anext__(self) -> bytes:
        while True:
            if self._done:
                raise StopAsyncIteration
            if self._resp is None:
                self._resp, self._skip = await self._fetcher._open(self.desc, self.offset)
            if self._iter is None:
                self._iter = self._resp.aiter_bytes()
            try:
                chunk = await self._iter.__anext__()
            except StopAsyncIteration:
                if self._skip:
                    await self.aclose()
                    raise UnexpectedStatus(f"unable to discard to offset {self.offset}") from None
                await self._finish()
                raise
            except httpx.TransportError as exc:
                await self._drop()
                if self.offset > self._resumed_at:  # progress since the last cut: a fresh budget
                    self._resume_left = self._resume_attempts
                self._resumed_at = self.offset
                if self._resume_left <= 0 or self.offset >= self.desc.size:
                    tries = self._resume_attempts - self._resume_left + 1
                    raise Unavailable(
                        f"reading {self.desc.digest} failed at offset {self.offset} of {self.desc.size}"
                        + (f", {tries} times in a row without progress" if tries > 1 else "")
                        + f": {type(exc).__name__}"
                    ) from exc
                self._resume_left -= 1
                log.info("resuming download", digest=self.desc.digest, offset=self.offset)
                continue
            if self._skip:
                n = min(self._skip, len(chunk))
                self._skip -= n
                chunk = chunk[n:]
            if not chunk:
                continue
            self.offset += len(chunk)
            if self.offset > self.desc.size:
                await self.aclose()
                raise DigestMismatch(
                    f"content {self.desc.digest}: more than the expected {self.desc.size} bytes"
                )
            if self._hasher is not None:
                self._hasher.update(chunk)
            return chunk

    async def _finish(self) -> None:
        await self.aclose()
        if self.offset != self.desc.size:
            raise DigestMismatch(
                f"content {self.desc.digest}: got {self.offset} bytes, expected {self.desc.size}"
            )
        if self._hasher is not None:
            actual = f"{self._hasher.name}:{self._hasher.hexdigest()}"
            if actual != self.desc.digest:
                raise DigestMismatch(f"digest mismatch: expected {self.desc.digest}, got {actual}")

    async def _drop(self) -> None:
        resp, self._resp, self._iter = self._resp, None, None
        if resp is not None:
            await resp.aclose()

    async def aclose(self) -> None:
        self._done = True
        await self._drop()

    async def read(self) -> bytes:
        """Everything that is left, verified."""
        return b"".join([chunk async for chunk in self])

    async def __aenter__(self) -> BlobStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class Fetcher:
    """Fetches content of one repository (made by :meth:`Resolver.fetcher`)."""

    def __init__(self, session: RegistrySession, ref: Reference, resume_attempts: int = 3) -> None:
        self.session = session
        self.ref = ref
        self.resume_attempts = resume_attempts
        self.scopes = (repository_scope(ref.path),)

    async def fetch(self, desc: Descriptor, offset: int = 0, *, hasher: Any | None = None) -> BlobStream:
        """Open ``desc`` from ``offset``. Raises NotFound when no host has it, Unavailable
        when none can be reached, InvalidArgument for a bad digest."""
        if offset < 0 or offset > desc.size:
            raise DigestMismatch(f"content {desc.digest}: offset {offset} outside 0..{desc.size}")
        if offset == 0:
            hasher = hasher_for(desc.digest)
        else:
            hasher_for(desc.digest)  # validate
        resp = await self._open(desc, offset)
        return BlobStream(self, desc, offset, resp, hasher, self.resume_attempts)

    async def fetch_bytes(self, desc: Descriptor, max_size: int | None = MAX_MANIFEST_SIZE) -> bytes:
        """The whole of ``desc``, verified; refuses (NotFound, like containerd) a descriptor
        larger than ``max_size``."""
        if max_size is not None and desc.size > max_size:
            raise NotFound(f"rejecting {desc.size} byte manifest {desc.digest}")
        stream = await self.fetch(desc)
        async with stream:
            return await stream.read()

    def _paths(self, desc: Descriptor) -> Sequence[str]:
        kind = "manifests" if (mediatypes.is_manifest(desc.media_type) or mediatypes.is_index(desc.media_type)
                               or desc.media_type == mediatypes.DOCKER_SCHEMA1_MANIFEST) else "blobs"
        return (kind,)

    async def _open(self, desc: Descriptor, offset: int) -> tuple[httpx.Response, int]:
        """The open response for ``desc`` from ``offset`` and how many leading bytes of it
        to discard (when the server ignored ``Range``)."""
        first_error: Exception | None = None
        for u in desc.urls:
            try:
                url = httpx.URL(u)
            except Exception:  # httpx.InvalidURL
                continue
            if url.scheme not in ("http", "https"):
                continue
            try:
                return await self._open_url(str(url), None, desc, offset, anonymous=True)
            except NotFound:
                continue
        (kind,) = self._paths(desc)
        for host in self.session.hosts_for(self.ref.domain, Capability.PULL):
            try:
                return await self._open_url(host.url(self.ref.path, kind, desc.digest), host, desc, offset)
            except (NotFound, Unavailable, UnexpectedStatus) as exc:
                first_error = first_error or exc
        if first_error is None or isinstance(first_error, NotFound):
            raise NotFound(
                f"could not fetch content descriptor {desc.digest} ({desc.media_type}) from remote"
            ) from first_error
        raise first_error

    async def _open_url(
        self, url: str, host: RegistryHost | None, desc: Descriptor, offset: int, anonymous: bool = False
    ) -> tuple[httpx.Response, int]:
        headers = {"Accept": f"{desc.media_type}, */*" if desc.media_type else "*/*"}
        if offset > 0:
            headers["Range"] = f"bytes={offset}-"
        resp = await self.session.send(
            "GET", url, host=host, headers=headers, scopes=self.scopes, anonymous=anonymous
        )
        if resp.status_code == 404:
            await resp.aclose()
            raise NotFound(f"content at {quote(url)}")
        if resp.status_code > 299:
            raise await unexpected_status(resp)
        if offset == 0:
            return resp, 0
        if resp.status_code != 206:
            return resp, offset  # the server ignored Range: the stream skips what we have
        start = _range_start(resp.headers.get("content-range", ""))
        if start is not None and start <= offset:
            return resp, offset - start
        # a range we did not ask for: take the whole blob and skip what we have
        log.info("registry answered an unusable Content-Range; fetching the whole blob",
                 digest=desc.digest, offset=offset, content_range=resp.headers.get("content-range", ""))
        await resp.aclose()
        resp = await self.session.send(
            "GET", url, host=host, headers={"Accept": headers["Accept"]}, scopes=self.scopes, anonymous=anonymous
        )
        if resp.status_code > 299:
            raise await unexpected_status(resp)
        return resp, offset


def _range_start(content_range: str) -> int | None:
    """The first byte of ``bytes START-END/TOTAL``; None when it is not that."""
    m = re.fullmatch(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", content_range.strip())
    return int(m.group(1)) if m else None
