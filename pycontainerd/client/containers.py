"""Containers as the client sees them (containerd's ``container.go``).

A container is metadata — id, image, runtime, OCI spec, rootfs snapshot, labels — and
:meth:`AsyncContainer.new_task` makes the running side::

    container = await client.new_container("web", image, with_process_args("sleep", "60"))
    task = await container.new_task(stdio=cio.capture())
    await task.start()
    ...
    await task.kill(); await task.wait(); await task.delete()
    await container.delete()            # and its rootfs snapshot

Errors: ``NotFound`` (no such container), ``AlreadyExists`` (a task already runs),
``FailedPrecondition`` (deleting a container whose task still exists).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Protocol

from google.protobuf import any_pb2

from ..api.services.tasks.v1 import tasks_pb2 as tpb
from ..api.services.tasks.v1 import tasks_pb2_grpc
from ..errdefs import FailedPrecondition, NotFound, quote
from ..records.containers import Container
from ..oci import spec as oci_spec
from ..wire.convert import mount_to_pb
from . import cio
from ._protocols import ClientCore
from .connection import mapped
from .images import AsyncImage
from .tasks import AsyncTask

STOP_SIGNAL_LABEL = "io.containerd.image.config.stop-signal"
"""Label with the image's ``StopSignal`` (``ctr tasks kill`` sends it by default)."""


class ContainerClient(ClientCore, Protocol):
    """What a container uses of the client: :class:`ClientCore` and its image by name."""

    async def get_image(self, name: str) -> AsyncImage: ...


class AsyncContainer:
    """A container by id (see module doc). Attribute ``id``; everything else is read from the
    daemon on demand (:meth:`info`), so it is never stale."""

    def __init__(self, client: ContainerClient, container_id: str) -> None:
        self._client = client
        self.id = container_id

    def __repr__(self) -> str:
        return f"<AsyncContainer {self.id!r}>"

    async def info(self) -> Container:
        """The container record (image, runtime, spec ``Any``, snapshotter and key, labels,
        times in ns). Raises ``NotFound``."""
        return await self._client.get_container(self.id)

    async def spec(self) -> dict[str, Any]:
        """The OCI runtime spec (``config.json`` shape)."""
        info = await self.info()
        if info.spec is None:
            return {}
        return oci_spec.from_any(info.spec)

    async def image(self) -> AsyncImage:
        """The container's image. Raises ``NotFound`` if it has none (or it was removed)."""
        info = await self.info()
        if not info.image:
            raise NotFound(f"image of container {quote(self.id)}")
        return await self._client.get_image(info.image)

    async def labels(self) -> dict[str, str]:
        return dict((await self.info()).labels)

    async def set_labels(self, labels: Mapping[str, str]) -> dict[str, str]:
        """Set the given labels (an empty value removes one); returns all labels."""
        info = await self.info()
        merged = {k: v for k, v in {**info.labels, **labels}.items() if v}
        updated = await self._client.update_container(dataclasses.replace(info, labels=merged),
                                                      *[f"labels.{k}" for k in labels])
        return dict(updated.labels)

    async def new_task(self, stdio: cio.Creator = cio.null_io, *, runtime_path: str = "",
                       options: Any = None) -> AsyncTask:
        """Create the container's task (not started: call :meth:`AsyncTask.start`).

        ``stdio`` is a creator from :mod:`pycontainerd.client.cio` (default: no stdio). The
        rootfs is the container's snapshot mounts. ``options`` is a protobuf message of the
        runtime's options (e.g. ``containerd.runc.v1.Options``).

        Raises ``AlreadyExists`` when the container already has a task.
        """
        info = await self.info()
        mounts = []
        if info.snapshot_key:
            mounts = await self._client.snapshotter(info.snapshotter).mounts(info.snapshot_key)
        io = await stdio(self.id)
        try:
            pid = await self._create_task(mounts, io.config, runtime_path, options)
        except BaseException:
            io.cancel()
            await io.close()
            raise
        return AsyncTask(self._client, self.id, pid, io)

    @mapped
    async def _create_task(self, mounts, config: cio.IOConfig, runtime_path: str, options: Any) -> int:
        req = tpb.CreateTaskRequest(container_id=self.id, rootfs=[mount_to_pb(m) for m in mounts],
                                    stdin=config.stdin, stdout=config.stdout, stderr=config.stderr,
                                    terminal=config.terminal, runtime_path=runtime_path)
        if options is not None:
            req.options.CopyFrom(any_pb2.Any(type_url=options.DESCRIPTOR.full_name,
                                             value=options.SerializeToString()))
        stub = tasks_pb2_grpc.TasksStub(self._client.conn.channel)
        resp = await stub.Create(req, metadata=self._client.conn.metadata())
        return resp.pid

    async def task(self, attach: cio.Attach | None = None) -> AsyncTask:
        """The container's existing task (``attach`` reconnects to its fifos). Raises
        ``NotFound`` when it has none."""
        t = AsyncTask(self._client, self.id)
        s = await t.status()
        t.pid = s.pid
        if attach is not None:
            t.io = await attach(cio.IOConfig(s.stdin, s.stdout, s.stderr, s.terminal))
        return t

    async def delete(self, with_snapshot: bool = True) -> None:
        """Delete the container record and (``with_snapshot``) its rootfs snapshot.

        Raises ``FailedPrecondition`` while the container has a task (delete the task
        first)."""
        info = await self.info()
        try:
            await AsyncTask(self._client, self.id).status()
        except NotFound:
            pass
        else:
            raise FailedPrecondition(f"cannot delete container {quote(self.id)}: it has a task (delete the task first)")
        if with_snapshot and info.snapshot_key and info.snapshotter:
            try:
                await self._client.snapshotter(info.snapshotter).remove(info.snapshot_key)
            except NotFound:
                pass
        await self._client.delete_container(self.id)
