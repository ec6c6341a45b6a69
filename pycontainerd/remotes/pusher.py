"""Push one manifest or blob to a repository (containerd's ``dockerPusher``).

:meth:`Pusher.push` returns what happened: ``"exists"``, ``"mounted"`` or ``"uploaded"``.

* Existence first: ``HEAD /blobs/<digest>``, or ``HEAD /manifests/<tag|digest>`` (by tag
  it only counts when ``Docker-Content-Digest`` is the same digest).
* Manifests and indexes: ``PUT /manifests/<tag|digest>`` with their media type as
  ``Content-Type``.
* Blobs: a cross-repository mount when a source repository on the same registry is known
  (``mount_from=``, or the descriptor's ``containerd.io/distribution.source.<host>``
  annotation, as containerd picks it): ``POST /blobs/uploads/?mount=<digest>&from=<repo>``,
  201 = mounted. Otherwise (or when the registry answers 202 to the mount, having started
  an upload instead) an upload: ``POST /blobs/uploads/`` → ``Location``; then one
  ``PUT <location>?digest=<digest>`` with the whole blob (monolithic), or ``PATCH`` chunks
  with ``Content-Range`` and a final empty ``PUT`` (``chunk_size=``). An upload location on
  another host gets no credentials.

The registry's ``Docker-Content-Digest`` must equal the descriptor's digest. Content is
given as bytes or as a zero-argument callable returning bytes or an async iterator of bytes
(called again if a request has to be retried).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Literal

import httpx

from pycontainerd.descriptor import Descriptor, parse_digest
from pycontainerd.errdefs import InvalidArgument
from pycontainerd.log import get_logger
from pycontainerd.remotes import mediatypes
from pycontainerd.remotes.errors import DigestMismatch, Unauthorized, UnexpectedStatus
from pycontainerd.remotes.reference import Reference
from pycontainerd.remotes.session import (
    Capability,
    RegistryHost,
    RegistrySession,
    repository_scope,
    unexpected_status,
)

log = get_logger("remotes")

DISTRIBUTION_SOURCE_LABEL = "containerd.io/distribution.source"

PushResult = Literal["exists", "mounted", "uploaded"]
Content = bytes | Callable[[], "bytes | AsyncIterator[bytes]"]


def distribution_source_label(ref: Reference) -> tuple[str, str]:
    """``(containerd.io/distribution.source.<host>, <repository>)`` for content pulled from ``ref``."""
    return f"{DISTRIBUTION_SOURCE_LABEL}.{ref.domain}", ref.path


def append_distribution_source(existing: str, repository: str) -> str:
    """Add ``repository`` to a comma-separated source label value (sorted, no duplicates)."""
    repos = {r for r in existing.split(",") if r} if existing else set()
    repos.add(repository)
    return ",".join(sorted(repos))


def select_mount_candidate(ref: Reference, sources: dict[str, str] | None) -> str:
    """The repository to mount from: of those named by ``ref``'s host source label, the one
    sharing most leading path components with ``ref`` (not ``ref`` itself); ``""`` if none."""
    if not sources:
        return ""
    value = sources.get(f"{DISTRIBUTION_SOURCE_LABEL}.{ref.domain}", "")
    target = ref.path.split("/")
    best_n, best = 0, ""
    for repo in (r for r in value.split(",") if r):
        if repo == ref.path:
            continue
        parts = repo.split("/")
        n = 0
        while n < len(parts) and n < len(target) and parts[n] == target[n]:
            n += 1
        if n >= best_n:
            best_n, best = n, repo
    return best


def _factory(content: Content) -> Callable[[], bytes | AsyncIterator[bytes]]:
    if isinstance(content, (bytes, bytearray, memoryview)):
        data = bytes(content)
        return lambda: data
    if callable(content):
        return content
    raise InvalidArgument("push content must be bytes or a callable returning bytes or an async iterator")


async def _rechunk(source: bytes | AsyncIterator[bytes], size: int) -> AsyncIterator[bytes]:
    if isinstance(source, bytes):
        for i in range(0, len(source), size):
            yield source[i : i + size]
        return
    buf = bytearray()
    async for chunk in source:
        buf += chunk
        while len(buf) >= size:
            yield bytes(buf[:size])
            del buf[:size]
    if buf:
        yield bytes(buf)


class Pusher:
    """Pushes content to one repository (made by :meth:`Resolver.pusher`)."""

    def __init__(self, session: RegistrySession, ref: Reference) -> None:
        self.session = session
        self.ref = ref
        self.scopes = (repository_scope(ref.path, push=True),)

    def _host(self) -> RegistryHost:
        hosts = self.session.hosts_for(self.ref.domain, Capability.PUSH)
        if not hosts:
            raise InvalidArgument(f"no push hosts for {self.ref.domain}")
        return hosts[0]

    async def exists(self, desc: Descriptor, tag: str | None = None) -> bool:
        host = self._host()
        is_manifest = mediatypes.is_manifest(desc.media_type) or mediatypes.is_index(desc.media_type)
        if is_manifest:
            url = host.url(self.ref.path, "manifests", tag or desc.digest)
        else:
            url = host.url(self.ref.path, "blobs", desc.digest)
        try:
            resp = await self.session.send(
                "HEAD",
                url,
                host=host,
                headers={"Accept": f"{desc.media_type}, */*"},
                scopes=self.scopes,
                stream=False,
            )
        except Unauthorized as exc:
            log.debug("unable to check existence, continuing with push", error=str(exc))
            return False
        if resp.status_code == 200:
            if is_manifest and tag:
                return resp.headers.get("docker-content-digest") == desc.digest
            return True
        if resp.status_code == 404:
            return False
        raise await unexpected_status(resp)

    async def push(
        self,
        desc: Descriptor,
        content: Content,
        *,
        tag: str | None = None,
        mount_from: Sequence[str] | str | None = None,
        chunk_size: int | None = None,
    ) -> PushResult:
        """Push ``desc`` (see module doc). ``tag`` names a manifest by tag instead of digest.

        Raises UnexpectedStatus/Unauthorized for a refused request and DigestMismatch when
        the registry reports another digest than ``desc.digest``.
        """
        parse_digest(desc.digest)
        if await self.exists(desc, tag):
            return "exists"
        if mediatypes.is_manifest(desc.media_type) or mediatypes.is_index(desc.media_type):
            await self._put_manifest(desc, _factory(content), tag)
            return "uploaded"
        return await self._push_blob(desc, _factory(content), mount_from, chunk_size)

    async def _put_manifest(self, desc: Descriptor, content, tag: str | None) -> None:
        host = self._host()
        url = host.url(self.ref.path, "manifests", tag or desc.digest)
        resp = await self.session.send(
            "PUT",
            url,
            host=host,
            headers={"Content-Type": desc.media_type, "Content-Length": str(desc.size)},
            scopes=self.scopes,
            content=content,
            stream=False,
        )
        if resp.status_code not in (200, 201, 202, 204):
            raise await unexpected_status(resp, f"failed to push manifest {desc.digest}")
        self._check_digest(resp, desc)

    @staticmethod
    def _check_digest(resp: httpx.Response, desc: Descriptor) -> None:
        got = resp.headers.get("docker-content-digest")
        if got and got != desc.digest:
            raise DigestMismatch(f"got digest {got}, expected {desc.digest}")

    async def _push_blob(
        self, desc: Descriptor, content, mount_from: Sequence[str] | str | None, chunk_size: int | None
    ) -> PushResult:
        host = self._host()
        start_url = host.url(self.ref.path, "blobs", "uploads/")
        if isinstance(mount_from, str):
            candidates = [mount_from]
        elif mount_from is not None:
            candidates = list(mount_from)
        else:
            picked = select_mount_candidate(self.ref, dict(desc.annotations))
            candidates = [picked] if picked else []

        resp: httpx.Response | None = None
        for source in candidates:
            if not source or source == self.ref.path:
                continue
            mount_url = str(httpx.URL(start_url, params={"mount": desc.digest, "from": source}))
            r = await self.session.send(
                "POST",
                mount_url,
                host=host,
                scopes=(*self.scopes, repository_scope(source)),
                stream=False,
            )
            if r.status_code == 201:
                log.debug("mounted blob", digest=desc.digest, source=source, repository=self.ref.path)
                return "mounted"
            if r.status_code in (401, 403):
                log.debug("failed to mount from repository", source=source)
                continue
            if r.status_code == 202:
                resp = r  # the registry started an upload instead
                break
            raise await unexpected_status(r, f"failed to mount {desc.digest} from {source}")

        if resp is None:
            resp = await self.session.send("POST", start_url, host=host, scopes=self.scopes, stream=False)
            if resp.status_code == 201:
                return "exists"
            if resp.status_code not in (200, 202, 204):
                raise await unexpected_status(resp, f"failed to start upload of {desc.digest}")

        location, anonymous = self._location(host, resp)
        if chunk_size:
            offset = 0
            async for chunk in _rechunk(content(), chunk_size):
                r = await self.session.send(
                    "PATCH",
                    str(location),
                    host=host,
                    headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
                        "Content-Length": str(len(chunk)),
                    },
                    scopes=self.scopes,
                    content=lambda chunk=chunk: chunk,
                    stream=False,
                    anonymous=anonymous,
                )
                if r.status_code not in (202, 204):
                    raise await unexpected_status(r, f"failed to upload a chunk of {desc.digest}")
                offset += len(chunk)
                location, anonymous = self._location(host, r, location, anonymous)
            if offset != desc.size:
                raise DigestMismatch(f"blob {desc.digest}: pushed {offset} bytes, expected {desc.size}")
            put_content = lambda: b""  # noqa: E731
            put_headers = {"Content-Type": "application/octet-stream", "Content-Length": "0"}
        else:
            put_content = content
            put_headers = {"Content-Type": "application/octet-stream", "Content-Length": str(desc.size)}

        put_url = location.copy_merge_params({"digest": desc.digest})
        r = await self.session.send(
            "PUT",
            str(put_url),
            host=host,
            headers=put_headers,
            scopes=self.scopes,
            content=put_content,
            stream=False,
            anonymous=anonymous,
        )
        if r.status_code not in (200, 201, 204):
            raise await unexpected_status(r, f"failed to upload {desc.digest}")
        self._check_digest(r, desc)
        return "uploaded"

    def _location(
        self,
        host: RegistryHost,
        resp: httpx.Response,
        previous: httpx.URL | None = None,
        previous_anonymous: bool = False,
    ) -> tuple[httpx.URL, bool]:
        """Where the upload continues and whether that is another host (no credentials)."""
        location = resp.headers.get("location")
        if not location:
            if previous is not None:
                return previous, previous_anonymous
            raise UnexpectedStatus(f"upload of blob to {self.ref.path}: no Location in response")
        if location.startswith("/"):
            return httpx.URL(f"{host.scheme}://{host.host}{location}"), False
        if "://" not in location:
            location = f"{host.scheme}://{location}"
        url = httpx.URL(location)
        other = url.netloc.decode("ascii") != host.host or url.scheme != host.scheme
        if other:
            log.debug("upload changed destination", host=url.host)
        return url, other or previous_anonymous
