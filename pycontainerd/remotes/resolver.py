"""Resolve an image reference to a descriptor and hand out fetchers and pushers
(containerd's ``docker.NewResolver``).

Resolving a tag: ``HEAD /v2/<name>/manifests/<tag>`` with an ``Accept`` listing every
manifest and index type; the descriptor is the response's ``Content-Type`` (parameters
dropped, ``text/plain`` meaning schema 1), ``Docker-Content-Digest`` and ``Content-Length``.
Without a digest header or a length it falls back to a ``GET`` and hashes the body.
Resolving ``name@digest`` tries ``/manifests/<digest>`` and then ``/blobs/<digest>``.
A 404 on every host is ``NotFound``; a refusal after authentication is ``Unauthorized``
("pull access denied, repository does not exist or may require authorization"); a
manifest larger than 4 MiB (containerd's limit) is refused as ``NotFound``.

References are normalised first (``busybox`` → ``docker.io/library/busybox:latest``), see
:mod:`.reference`.

Example::

    async with Resolver(plain_http=["127.0.0.1:5000"]) as resolver:
        name, desc = await resolver.resolve("127.0.0.1:5000/library/busybox:latest")
        data = await resolver.fetcher(name).fetch_bytes(desc)
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping

import httpx

from pycontainerd.descriptor import Descriptor, hasher_for, parse_digest
from pycontainerd.errdefs import ContainerdError, InvalidArgument, NotFound, Unavailable
from pycontainerd.log import get_logger
from pycontainerd.remotes import mediatypes
from pycontainerd.remotes.auth import CredentialsFunc, make_credentials
from pycontainerd.remotes.errors import DigestMismatch, Unauthorized, UnexpectedStatus
from pycontainerd.remotes.fetcher import MAX_MANIFEST_SIZE, Fetcher
from pycontainerd.remotes.pusher import Pusher
from pycontainerd.remotes.reference import Reference, parse_normalized
from pycontainerd.remotes.session import (
    Capability,
    HostsFunc,
    RegistrySession,
    repository_scope,
    unexpected_status,
)

log = get_logger("remotes")

DEFAULT_MAX_CONCURRENT_DOWNLOADS = 3
"""Layer downloads in flight per pull (the CRI default ``max_concurrent_downloads``)."""


def _media_type(resp: httpx.Response) -> str:
    ct = resp.headers.get("content-type", "").split(";", 1)[0].strip()
    return mediatypes.DOCKER_SCHEMA1_MANIFEST if ct == "text/plain" else ct


class Resolver:
    """Resolves references and makes fetchers/pushers, sharing one HTTP client and one
    authorizer (so a token fetched for a resolve is reused by the fetches that follow).

    ``credentials``: a host → (user, secret) mapping, one (user, secret) pair, or a function;
    ``docker_config``: also read a docker ``config.json`` (``True`` for the default path, or a
    path; off by default so a daemon never picks up a user's file by accident).
    ``plain_http``: ``True`` for every host or a collection of ``host[:port]`` names.
    ``transport`` is injectable (``httpx.MockTransport`` in tests).
    """

    def __init__(
        self,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        credentials: Mapping[str, tuple[str, str]] | tuple[str, str] | CredentialsFunc | None = None,
        docker_config: bool | str | os.PathLike = False,
        plain_http: bool | Collection[str] = False,
        hosts: HostsFunc | None = None,
        headers: Mapping[str, str] | None = None,
        max_concurrent_downloads: int = DEFAULT_MAX_CONCURRENT_DOWNLOADS,
        client: httpx.AsyncClient | None = None,
        timeout: float | httpx.Timeout = httpx.Timeout(30.0, connect=10.0),
    ) -> None:
        creds = make_credentials(credentials, docker_config=docker_config)
        self.session = RegistrySession(
            transport=transport,
            client=client,
            credentials=creds,
            headers=headers,
            hosts=hosts,
            plain_http=plain_http,
            timeout=timeout,
        )
        if max_concurrent_downloads < 1:
            raise InvalidArgument("max_concurrent_downloads must be at least 1")
        self.max_concurrent_downloads = max_concurrent_downloads

    async def aclose(self) -> None:
        await self.session.aclose()

    async def __aenter__(self) -> Resolver:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @staticmethod
    def parse(ref: str | Reference) -> Reference:
        return ref if isinstance(ref, Reference) else parse_normalized(ref)

    def fetcher(self, ref: str | Reference) -> Fetcher:
        return Fetcher(self.session, self.parse(ref))

    def pusher(self, ref: str | Reference) -> Pusher:
        return Pusher(self.session, self.parse(ref))

    async def resolve(self, ref: str | Reference) -> tuple[str, Descriptor]:
        """``(normalised name, descriptor)`` of what ``ref`` points at (see module doc)."""
        r = self.parse(ref)
        name = str(r)
        if r.digest:
            parse_digest(r.digest)
            paths = [("manifests", r.digest), ("blobs", r.digest)]
            capability = Capability.PULL
        elif r.tag:
            paths = [("manifests", r.tag)]
            capability = Capability.PULL | Capability.RESOLVE
        else:
            raise InvalidArgument(f"reference {name}: object required")
        hosts = self.session.hosts_for(r.domain, capability)
        if not hosts:
            raise NotFound(f"no resolve hosts for {r.domain}")
        scopes = (repository_scope(r.path),)
        accept = {"Accept": mediatypes.RESOLVE_ACCEPT}
        first_error: ContainerdError | None = None

        for kind, obj in paths:
            for host in hosts:
                url = host.url(r.path, kind, obj)
                try:
                    resp = await self.session.send("HEAD", url, host=host, headers=accept, scopes=scopes, stream=False)
                except (Unauthorized, Unavailable) as exc:
                    first_error = first_error or self._denied(exc)
                    continue
                if resp.status_code == 404:
                    log.debug("not found, trying next host", host=host.host, url=url)
                    continue
                if resp.status_code > 299:
                    err = await unexpected_status(resp, f"pulling from host {host.host} failed")
                    if resp.status_code > 399:
                        first_error = first_error or self._denied(err)
                        continue
                    raise err
                dgst = r.digest
                size = int(resp.headers["content-length"]) if "content-length" in resp.headers else -1
                media_type = _media_type(resp)
                if not dgst:
                    header = resp.headers.get("docker-content-digest", "")
                    if header and size != -1:
                        try:
                            parse_digest(header)
                        except InvalidArgument as exc:
                            raise InvalidArgument(f"{header!r} in header not a valid digest") from exc
                        dgst = header
                if not dgst or size == -1:
                    try:
                        got = await self._get_manifest(url, host, accept, scopes, dgst)
                    except (Unauthorized, Unavailable, UnexpectedStatus) as exc:
                        first_error = first_error or self._denied(exc)
                        continue
                    if got is None:
                        continue
                    media_type, dgst, size = got
                if size > MAX_MANIFEST_SIZE:
                    first_error = first_error or NotFound(f"rejecting {size} byte manifest for {name}")
                    continue
                desc = Descriptor(media_type=media_type, digest=dgst, size=size)
                log.debug("resolved", ref=name, digest=dgst, mediatype=media_type)
                return name, desc
        raise first_error or NotFound(name)

    async def _get_manifest(
        self, url: str, host, accept: Mapping[str, str], scopes: tuple[str, ...], dgst: str
    ) -> tuple[str, str, int] | None:
        resp = await self.session.send("GET", url, host=host, headers=accept, scopes=scopes)
        try:
            if resp.status_code == 404:
                return None
            if resp.status_code > 299:
                raise await unexpected_status(resp)
            hasher = hasher_for(dgst) if dgst else hasher_for("sha256:" + "0" * 64)
            size = 0
            async for chunk in resp.aiter_bytes():
                size += len(chunk)
                if size > MAX_MANIFEST_SIZE:
                    break
                hasher.update(chunk)
            actual = f"{hasher.name}:{hasher.hexdigest()}"
            if dgst and size <= MAX_MANIFEST_SIZE and actual != dgst:
                raise DigestMismatch(f"manifest at {url}: digest mismatch: expected {dgst}, got {actual}")
            return _media_type(resp), dgst or actual, size
        finally:
            await resp.aclose()

    @staticmethod
    def _denied(exc: ContainerdError) -> ContainerdError:
        if isinstance(exc, Unauthorized):
            return Unauthorized(
                "pull access denied, repository does not exist or may require authorization: " + exc.context,
                status_code=exc.status_code,
                method=exc.method,
                url=exc.url,
                body=exc.body,
                registry_errors=exc.registry_errors,
            )
        return exc
