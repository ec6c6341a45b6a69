"""Content through the Content service: info, list, read, write (resumable), delete.

Follows containerd's content proxy: a write is one bidirectional ``Write`` stream; the
first message (``STAT``) carries the ref and, when known, the total and expected digest,
and tells where an earlier, interrupted ingest of the same ref stopped — so
:meth:`ContentClient.write` resumes instead of starting over.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import grpc
from google.protobuf import field_mask_pb2

from ..api.services.content.v1 import content_pb2 as pb
from ..api.services.content.v1 import content_pb2_grpc
from ..content import after
from ..errdefs import AlreadyExists, FailedPrecondition, NotFound
from ..lazy import LazyModule
from ..wire.errors import from_rpc_error
from .connection import Connection, Stub, current_lease, is_transport_failure, mapped, mapped_stream

if TYPE_CHECKING:
    from ..api.services.leases.v1 import leases_pb2, leases_pb2_grpc
else:  # for holding blobs by a pull's lease: not for reading them (`pyctr images ls`)
    leases_pb2 = LazyModule("pycontainerd.api.services.leases.v1.leases_pb2")
    leases_pb2_grpc = LazyModule("pycontainerd.api.services.leases.v1.leases_pb2_grpc")

CHUNK = 1 << 20  # bytes per Write message


@dataclass(frozen=True)
class ContentInfo:
    """A blob as a namespace sees it: digest, size in bytes, times (ns), labels."""

    digest: str
    size: int
    created_at: int = 0
    updated_at: int = 0
    labels: Mapping[str, str] = field(default_factory=dict)


def _info(i: pb.Info) -> ContentInfo:
    return ContentInfo(i.digest, i.size, i.created_at.ToNanoseconds(), i.updated_at.ToNanoseconds(), dict(i.labels))


@dataclass(frozen=True)
class IngestStatus:
    """An unfinished write (``content active``): ``ref``, bytes written so far
    (``offset``), expected ``total`` (0 if unknown), ``expected`` digest, times in ns."""

    ref: str
    offset: int
    total: int = 0
    expected: str = ""
    started_at: int = 0
    updated_at: int = 0


def _status(st: pb.Status) -> IngestStatus:
    return IngestStatus(st.ref, st.offset, st.total, st.expected, st.started_at.ToNanoseconds(),
                        st.updated_at.ToNanoseconds())


class AsyncContentStore:
    """The daemon's content store as this namespace sees it (``client.content``).

    Blobs are addressed by digest (``sha256:<hex>``); sizes are bytes; a write is
    identified by its ``ref`` so an interrupted one can resume."""

    leases = Stub(leases_pb2_grpc, "LeasesStub")

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.stub = content_pb2_grpc.ContentStub(conn.channel)

    @mapped
    async def info(self, digest: str) -> ContentInfo:
        """Raises :class:`NotFound` when the namespace has no such blob."""
        resp = await self.stub.Info(pb.InfoRequest(digest=digest), metadata=self.conn.metadata())
        return _info(resp.info)

    async def list(self, filters: list[str] | None = None) -> list[ContentInfo]:
        """Every blob matching any of ``filters`` (containerd's filter syntax)."""
        out = []
        async for resp in mapped_stream(self.stub.List(pb.ListContentRequest(filters=filters or []),
                                                       metadata=self.conn.metadata()), self.conn):
            out.extend(_info(i) for i in resp.info)
        return out

    @mapped
    async def update_labels(self, digest: str, labels: Mapping[str, str], paths: list[str] | None = None) -> ContentInfo:
        """Set labels (``paths`` default: one ``labels.<key>`` per given key)."""
        mask = field_mask_pb2.FieldMask(paths=paths if paths is not None else [f"labels.{k}" for k in labels])
        resp = await self.stub.Update(pb.UpdateRequest(info=pb.Info(digest=digest, labels=dict(labels)),
                                                       update_mask=mask), metadata=self.conn.metadata())
        return _info(resp.info)

    @mapped
    async def delete(self, digest: str) -> None:
        await self.stub.Delete(pb.DeleteContentRequest(digest=digest), metadata=self.conn.metadata())

    async def read(self, digest: str, offset: int = 0, size: int = 0) -> AsyncIterator[bytes]:
        """Stream the blob's bytes from ``offset`` (``size`` 0 = to the end)."""
        call = self.stub.Read(pb.ReadContentRequest(digest=digest, offset=offset, size=size),
                              metadata=self.conn.metadata())
        async for resp in mapped_stream(call, self.conn):
            yield resp.data

    async def read_all(self, digest: str) -> bytes:
        return b"".join([chunk async for chunk in self.read(digest)])

    @mapped
    async def statuses(self, *filters: str) -> list[IngestStatus]:
        """Unfinished writes (``ref~=…`` filters)."""
        resp = await self.stub.ListStatuses(pb.ListStatusesRequest(filters=list(filters)),
                                            metadata=self.conn.metadata())
        return [_status(st) for st in resp.statuses]

    @mapped
    async def status(self, ref: str) -> IngestStatus:
        """One unfinished write. Raises :class:`NotFound`."""
        resp = await self.stub.Status(pb.StatusRequest(ref=ref), metadata=self.conn.metadata())
        return _status(resp.status)

    @mapped
    async def abort(self, ref: str) -> None:
        await self.stub.Abort(pb.AbortRequest(ref=ref), metadata=self.conn.metadata())

    async def hold(self, digest: str) -> bool:
        """True if the blob exists, and then the current lease (if any) holds it: ``Info``,
        then ``Leases.AddResource`` (what containerd's store does when a writer is opened for
        a blob it has), so a collection cannot take a blob a pull decided not to fetch."""
        try:
            await self.info(digest)
        except NotFound:
            return False
        lease = current_lease()
        if lease:
            await self._add_to_lease(lease, digest)
        return True

    @mapped
    async def _add_to_lease(self, lease: str, digest: str) -> None:
        await self.leases.AddResource(leases_pb2.AddResourceRequest(
            id=lease, resource=leases_pb2.Resource(id=digest, type="content")), metadata=self.conn.metadata())

    async def write(self, ref: str, data: AsyncIterable[bytes] | bytes, *, expected: str = "", total: int = 0,
                    labels: Mapping[str, str] | None = None, progress=None, start: int = 0) -> str:
        """Write a blob under ``ref`` and commit it; returns its digest.

        ``data`` yields the blob from byte ``start`` on (0: its beginning); when the daemon
        already holds more of the ingest (an interrupted write of the same ref), the bytes it
        has are skipped and writing resumes. A ``start`` beyond what the daemon holds raises
        :class:`FailedPrecondition`. ``progress(offset, total)`` is called after each chunk. A blob that
        already exists counts as success (containerd's rule).

        Raises:
            FailedPrecondition: size or digest mismatch at commit (nothing committed).
        """
        call = self.stub.Write(metadata=self.conn.metadata())
        try:
            await call.write(pb.WriteContentRequest(action=pb.STAT, ref=ref, total=total, expected=expected))
            offset = (await call.read()).offset
            if offset < start:
                raise FailedPrecondition(f"ingest {ref} holds {offset} bytes, cannot continue from {start}")
            async for chunk in after(data, offset - start):
                for i in range(0, len(chunk), CHUNK):
                    await call.write(pb.WriteContentRequest(action=pb.WRITE, offset=offset, data=chunk[i:i + CHUNK]))
                    offset = (await call.read()).offset
                    if progress is not None:
                        progress(offset, total)
            await call.write(pb.WriteContentRequest(action=pb.COMMIT, offset=offset, total=total,
                                                    expected=expected, labels=dict(labels or {})))
            resp = await call.read()
            await call.done_writing()
            # read to the end of the stream, so that it ends with the server's OK rather than
            # our cancel below (which only stops a stream that failed half way)
            while await call.read() is not grpc.aio.EOF:
                pass
        except grpc.RpcError as exc:
            if is_transport_failure(exc):
                raise await self.conn.lost(exc) from exc
            err = from_rpc_error(exc)
            if isinstance(err, AlreadyExists) and expected:
                return expected
            raise err from exc
        finally:
            call.cancel()
        if expected and resp.digest != expected:
            raise FailedPrecondition(f"unexpected digest: {resp.digest} != {expected}")
        return resp.digest


ContentClient = AsyncContentStore
"""The earlier name of :class:`AsyncContentStore`."""
