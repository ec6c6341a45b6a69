"""``containerd.services.content.v1.Content`` over the namespaced :class:`ContentStore`.

Protocol facts follow containerd 1.6's ``services/content/contentserver``:

* ``List`` streams the namespace's blobs in messages of up to :data:`LIST_BATCH` infos.
* ``Read`` streams 1 MiB chunks of ``[offset, offset+size)`` (``size`` <= 0 or past the
  end: to the end; a negative offset counts as 0; an offset past the end is
  ``OUT_OF_RANGE``). As in containerd, each response's ``offset`` counts from the start of
  the requested range, not from the start of the blob.
* ``Write`` is a bidirectional stream. The first request must carry ``ref`` (and may carry
  ``total`` and ``expected``); it opens (or resumes) the writer, which stays locked for the
  stream's life. Each request gets one response echoing its ``action``, with the writer's
  ``offset``:

  - ``STAT``: also ``digest`` so far, ``started_at``, ``updated_at``, ``total``.
  - ``WRITE``/``COMMIT``: a non-zero ``offset`` must equal the current offset
    (``OUT_OF_RANGE`` otherwise); offset 0 on a non-empty ingest restarts it (truncate);
    ``data`` is appended; ``COMMIT`` then commits with the latest ``total``/``expected``
    seen and the request's ``labels``, and ends the stream. The response carries the
    ``digest``.
  - a request whose ``expected`` digest is already in the namespace aborts the write with
    ``ALREADY_EXISTS`` (``blob with expected digest ... exists``), which clients take as
    success.

  Response fields persist from one response to the next, and when the stream ends without
  error (after ``COMMIT``, or when the client closes its side) the last response is sent
  once more — both exactly as containerd does.
"""

from __future__ import annotations

import contextlib

from google.protobuf import empty_pb2

from .. import digest as digest_mod
from ..api.services.content.v1 import content_pb2 as pb
from ..api.services.content.v1 import content_pb2_grpc
from ..content import CHUNK
from ..errdefs import AlreadyExists, ContainerdError, InvalidArgument, OutOfRange, quote
from ..metadata.content import ContentStore
from ..wire.convert import timestamp
from ..wire.records.content import content_info_to_pb, content_status_to_pb

LIST_BATCH = 100
"""Infos per ``ListContentResponse`` (containerd's contentserver)."""
READ_CHUNK = CHUNK
"""Bytes per ``ReadContentResponse`` (1 MiB)."""


class ContentServicer(content_pb2_grpc.ContentServicer):
    service_names = ("containerd.services.content.v1.Content",)

    def __init__(self, store: ContentStore) -> None:
        self.store = store

    def add_to_server(self, server) -> None:
        content_pb2_grpc.add_ContentServicer_to_server(self, server)

    async def Info(self, request, context):
        return pb.InfoResponse(info=content_info_to_pb(await self.store.info(request.digest)))

    async def Update(self, request, context):
        info = await self.store.update(
            request.info.digest, dict(request.info.labels), list(request.update_mask.paths)
        )
        return pb.UpdateResponse(info=content_info_to_pb(info))

    async def List(self, request, context):
        infos = await self.store.list(list(request.filters))
        for start in range(0, len(infos), LIST_BATCH):
            yield pb.ListContentResponse(info=[content_info_to_pb(i) for i in infos[start : start + LIST_BATCH]])

    async def Delete(self, request, context):
        await self.store.delete(request.digest)
        return empty_pb2.Empty()

    async def Read(self, request, context):
        digest_mod.validate(request.digest)
        async with await self.store.reader_at(request.digest) as ra:  # the namespace's blob (its Info), opened
            offset = max(request.offset, 0)
            if offset > ra.size:
                raise OutOfRange(f"read past object length {ra.size} bytes")
            size = request.size
            if size <= 0 or offset + size > ra.size:
                size = ra.size - offset
            sent = 0
            while sent < size:
                chunk = await ra.read(offset + sent, min(READ_CHUNK, size - sent))
                if not chunk:
                    break
                yield pb.ReadContentResponse(offset=sent, data=chunk)
                sent += len(chunk)

    async def Status(self, request, context):
        try:
            status = await self.store.status(request.ref)
        except ContainerdError as exc:
            raise type(exc)(f"could not get status for ref {quote(request.ref)}: {exc.context}") from exc
        return pb.StatusResponse(status=content_status_to_pb(status))

    async def ListStatuses(self, request, context):
        statuses = await self.store.list_statuses(list(request.filters))
        return pb.ListStatusesResponse(statuses=[content_status_to_pb(s) for s in statuses])

    async def Abort(self, request, context):
        await self.store.abort(request.ref)
        return empty_pb2.Empty()

    async def Write(self, request_iterator, context):
        requests = request_iterator.__aiter__()
        try:
            req = await requests.__anext__()
        except StopAsyncIteration:
            return
        if not req.ref:
            raise InvalidArgument("first message must have a reference")
        ref, total, expected = req.ref, req.total, req.expected
        writer = await self.store.writer(ref, total, expected)
        msg = pb.WriteContentResponse()
        try:
            while True:
                msg.action = req.action
                status = writer.status()
                msg.offset = status.offset
                if req.expected:
                    expected = req.expected
                    if await self.store.exists(req.expected):
                        await writer.close()
                        with contextlib.suppress(ContainerdError):
                            await self.store.abort(ref)
                        raise AlreadyExists(f"blob with expected digest {req.expected} exists")
                if req.total > 0:
                    total = req.total
                if req.action == pb.STAT:
                    msg.digest = writer.digest()
                    msg.started_at.CopyFrom(timestamp(status.started_at))
                    msg.updated_at.CopyFrom(timestamp(status.updated_at))
                    msg.total = total
                elif req.action in (pb.WRITE, pb.COMMIT):
                    if req.offset > 0 and req.offset != status.offset:
                        raise OutOfRange(f"write @{req.offset} must occur at current offset {status.offset}")
                    if req.offset == 0 and status.offset > 0:
                        await writer.truncate(0)
                        msg.offset = 0
                    if req.data:
                        msg.offset += await writer.write(req.data)
                    if req.action == pb.COMMIT:
                        await writer.commit(total, expected, dict(req.labels) or None)
                    msg.digest = writer.digest()
                yield _copy(msg)
                if req.action == pb.COMMIT:
                    break
                try:
                    req = await requests.__anext__()
                except StopAsyncIteration:
                    break
            yield _copy(msg)
        finally:
            await writer.close()


def _copy(msg: pb.WriteContentResponse) -> pb.WriteContentResponse:
    out = pb.WriteContentResponse()
    out.CopyFrom(msg)
    return out
