"""The CRI plugin's one seam to the daemon: its in-process core services, in namespace
``k8s.io`` (containerd's CRI plugin drives containerd through its client over in-memory
services in the same way; nothing here opens the daemon's socket).

:class:`Services` is what ``plugins/cri.py`` takes from the plugin registry: the stores the
``io.containerd.service.v1.*`` plugins export (containers, images, content, leases,
snapshots, the differ, tasks) and the event exchange. :class:`Daemon` is the narrow surface
the CRI calls use. Every call runs in namespace ``k8s.io`` (the context variable
:data:`pycontainerd.namespaces.current`) and, inside :meth:`Daemon.lease`, under that lease
(:data:`pycontainerd.leases_context.current`), so events, leases and garbage collection are
exactly those of the same calls over gRPC. Errors are the services' own
:mod:`pycontainerd.errdefs` classes.

Pulling runs the one puller, :func:`pycontainerd.images.pull.pull` (fetch, record, unpack),
over :class:`pycontainerd.images.local.LocalTarget`: its few calls answered by the same
services.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import hashlib
import secrets
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from google.protobuf import any_pb2

from .. import leases_context, namespaces
from ..api.runtime.runc.options import oci_pb2 as runc_options
from ..errdefs import (
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    NotFound,
    ResourceExhausted,
)
from ..events.exchange import Exchange
from ..images.local import LocalTarget
from ..images.pull import pull, unpack_image
from ..records.containers import Container as ContainerRecord
from ..metadata.containers import ContainerStore
from ..metadata.content import ContentStore
from ..metadata.images import ImageStore
from ..records.images import Image
from ..metadata.leases import LeaseStore
from ..records.leases import Lease
from ..metadata.snapshots import SnapshotStore
from ..mount import Mount
from ..runtime.task import ProcessState
from ..tasks import LocalTasks

NAMESPACE = "k8s.io"
PULL_LEASE_PREFIX = "cri-pull-"
TASK_STATE_TIMEOUT = 30.0


@dataclass
class _Pending:
    """The lease of a :meth:`Daemon.lease` block: written yet, deleted yet."""

    lease: Lease
    written: bool = False
    ended: bool = False


_pending: contextvars.ContextVar[_Pending | None] = contextvars.ContextVar("cri_lease", default=None)


@dataclass(frozen=True)
class Services:
    """The daemon's in-process services the CRI plugin uses (``plugins/cri.py`` fills it)."""

    containers: ContainerStore
    images: ImageStore
    content: ContentStore
    leases: LeaseStore
    snapshots: Mapping[str, SnapshotStore]
    differ: Any
    tasks: LocalTasks
    exchange: Exchange
    gc: Any = None


def _k8s(fn):
    """Run the coroutine method in namespace ``k8s.io``."""
    @functools.wraps(fn)
    async def wrapper(*args, **kwargs):
        with namespaces.using(NAMESPACE):
            return await fn(*args, **kwargs)
    return wrapper


def _expiring(after: timedelta) -> dict[str, str]:
    """The label that lets the garbage collector drop a lease ``after`` from now."""
    when = datetime.now(timezone.utc) + after
    return {"containerd.io/gc.expire": when.strftime("%Y-%m-%dT%H:%M:%SZ")}


def runtime_options(options: Mapping[str, Any]) -> any_pb2.Any | None:
    """containerd's ``runc.v1.Options`` from the TOML ``options`` table."""
    if not options:
        return None
    msg = runc_options.Options(
        binary_name=str(options.get("BinaryName", "")), root=str(options.get("Root", "")),
        systemd_cgroup=bool(options.get("SystemdCgroup", False)),
        no_pivot_root=bool(options.get("NoPivotRoot", False)),
        no_new_keyring=bool(options.get("NoNewKeyring", False)),
        shim_cgroup=str(options.get("ShimCgroup", "")), io_uid=int(options.get("IoUid", 0)),
        io_gid=int(options.get("IoGid", 0)), criu_path=str(options.get("CriuPath", "")))
    return any_pb2.Any(type_url=msg.DESCRIPTOR.full_name, value=msg.SerializeToString())


def image_record(name: str, target, managed: bool = True) -> Image:
    labels = {"io.cri-containerd.image": "managed"} if managed else {}
    return Image(name=name, target=target, labels=labels)


class Daemon:
    """The daemon's services as the CRI calls use them (see the module doc).

    Args:
        services: the in-process services.
        snapshotter: the snapshotter containers and images use.
    """

    def __init__(self, services: Services, snapshotter: str = "overlayfs") -> None:
        self.services = services
        self.snapshotter = snapshotter

    @property
    def exchange(self) -> Exchange:
        return self.services.exchange

    def _snapshots(self) -> SnapshotStore:
        store = self.services.snapshots.get(self.snapshotter)
        if store is None:
            raise FailedPrecondition(f"snapshotter not loaded: {self.snapshotter}")
        return store

    def _target(self) -> LocalTarget:
        """What the puller writes to: these services, leases made by :meth:`lease`."""
        s = self.services
        return LocalTarget(s.content, s.images, s.snapshots, s.differ, self.lease)

    # -- leases -----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lease(self, expire: timedelta = timedelta(hours=1)) -> AsyncIterator[str]:
        """Everything created inside is kept from garbage collection until the block ends;
        inside another lease's block that lease is used (containerd's ``WithLease``).

        The lease record is written with the block's first write — in the same transaction
        as a :meth:`prepare`'s snapshot (any other write under it writes it first) — and
        deleted with :meth:`create_container` ``(…, last_in_lease=True)``'s record, else
        when the block ends: the holds of containerd's ``WithLease`` around
        ``NewContainer``, in two commits instead of four."""
        outer = leases_context.get()
        if outer:
            await self._write_lease()
            yield outer
            return
        pending = _Pending(LeaseStore.new(f"cri-{time.time_ns()}-{secrets.token_hex(3)}", _expiring(expire)))
        token = _pending.set(pending)
        try:
            with leases_context.using(pending.lease.id):
                yield pending.lease.id
        finally:
            _pending.reset(token)
            if pending.written and not pending.ended:
                with namespaces.using(NAMESPACE), contextlib.suppress(NotFound):
                    await self.services.leases.delete(pending.lease.id)

    async def _write_lease(self) -> None:
        """Write the block's lease now if no write did yet (a write that cannot carry it)."""
        pending = _pending.get()
        if pending is not None and not pending.written:
            with namespaces.using(NAMESPACE):
                await self.services.leases.db.update(
                    lambda txn: LeaseStore.create_in(txn, NAMESPACE, pending.lease))
            pending.written = True

    # -- images -----------------------------------------------------------------------

    @_k8s
    async def pull(self, ref: str, resolver) -> Image:
        """Fetch ``ref`` with ``resolver`` and unpack it for this host. Returns the record.

        The pull runs under a lease of its own, named after ``ref`` (expiring in 24 hours,
        as containerd's client leases do). When the disk fills (``ResourceExhausted``) the
        lease stays: what was downloaded stays with it, and the next pull of ``ref`` resumes
        the partial blob with a ``Range`` request once there is room; any other end deletes
        the lease. A failed pull leaves no image record it made (containerd records the
        image only once it is unpacked)."""
        leases = self.services.leases
        lease_id = PULL_LEASE_PREFIX + hashlib.sha256(ref.encode()).hexdigest()[:32]
        with contextlib.suppress(AlreadyExists):  # kept by a pull the disk cut short
            await leases.create(lease_id, {"io.cri-containerd.pull": ref, **_expiring(timedelta(hours=24))})
        existed = await self.get_image(ref) is not None
        try:
            with leases_context.using(lease_id):
                img = await pull(self._target(), ref, resolver=resolver, snapshotter=self.snapshotter)
        except BaseException as exc:
            if not existed:
                with contextlib.suppress(Exception):
                    await self.delete_image(ref)
            if not isinstance(exc, ResourceExhausted):
                with contextlib.suppress(Exception):
                    await leases.delete(lease_id)
            raise
        await leases.delete(lease_id)
        return img

    @_k8s
    async def unpack(self, name: str) -> None:
        await unpack_image(self._target(), self.services.images.get(name), snapshotter=self.snapshotter)

    @property
    def generation(self) -> int:
        """The metadata database's write generation (bumped after each commit): a value
        computed from records read after it holds every write bumped so far."""
        return self.services.images.db.generation

    @_k8s
    async def get_image(self, name: str) -> Image | None:
        try:
            return self.services.images.get(name)
        except NotFound:
            return None

    @_k8s
    async def list_images(self, *filters: str) -> list[Image]:
        return self.services.images.list(list(filters))

    @_k8s
    async def put_images(self, images: Sequence[Image]) -> None:
        """Create each image, or update its target and labels if the name exists; one commit."""
        await self.services.images.put_all(images, ["target", "labels"])

    @_k8s
    async def delete_image(self, name: str) -> None:
        """Idempotent; asks for a garbage collection (as Images.Delete does)."""
        await self.delete_images([name])

    @_k8s
    async def delete_images(self, names: Sequence[str], sync: bool = False) -> None:
        """Delete every record of ``names`` (those that exist) in one transaction, then ask
        for a garbage collection — with ``sync``, run one and return when the images'
        content and snapshots are gone (containerd's CRI deletes an image's last name with
        ``SynchronousDelete``)."""
        if not await self.services.images.delete_all(names) or self.services.gc is None:
            return
        if sync:
            await self.services.gc.collect(every_backend=False)
        else:
            self.services.gc.schedule()

    @_k8s
    async def read_blob(self, digest: str) -> bytes:
        return await self.services.content.read(digest)

    # -- snapshots --------------------------------------------------------------------

    @_k8s
    async def snapshot_exists(self, key: str) -> bool:
        try:
            await self._snapshots().stat(key)
            return True
        except NotFound:
            return False

    @_k8s
    async def prepare(self, key: str, parent: str, labels: Mapping[str, str] | None = None) -> list[Mount]:
        """An active snapshot; inside :meth:`lease`, the block's lease is written with it
        when it is the block's first write."""
        pending = _pending.get()
        if pending is None or pending.written:
            return await self._snapshots().prepare(key, parent, dict(labels or {}))
        mounts = await self._snapshots().prepare(
            key, parent, dict(labels or {}), also=lambda txn: LeaseStore.create_in(txn, NAMESPACE, pending.lease))
        pending.written = True
        return mounts

    @_k8s
    async def view(self, key: str, parent: str, labels: Mapping[str, str] | None = None) -> list[Mount]:
        """A read-only snapshot of ``parent`` (an image volume): its mounts; those of the
        existing view when ``key`` is one already."""
        await self._write_lease()
        try:
            return await self._snapshots().view(key, parent, dict(labels or {}))
        except AlreadyExists:
            return await self._snapshots().mounts(key)

    @_k8s
    async def mounts(self, key: str) -> list[Mount]:
        return await self._snapshots().mounts(key)

    @_k8s
    async def remove_snapshot(self, key: str) -> None:
        """Idempotent."""
        with contextlib.suppress(NotFound):
            await self._snapshots().remove(key)

    @_k8s
    async def snapshot_usage(self, key: str) -> tuple[int, int]:
        """``(bytes, inodes)`` used by the active snapshot ``key``."""
        usage = await self._snapshots().usage(key)
        return usage.size, usage.inodes

    # -- containers -------------------------------------------------------------------

    @_k8s
    async def create_container(self, record: ContainerRecord, last_in_lease: bool = False) -> None:
        """Create the record. ``last_in_lease``: it is the last write of a :meth:`lease`
        block, whose lease is deleted in the same transaction (the record holds the
        snapshot from then on)."""
        pending = _pending.get()
        if not last_in_lease or pending is None or not pending.written or pending.ended:
            await self.services.containers.create(record)
            return
        await self.services.containers.create(
            record, also=lambda txn: LeaseStore.delete_in(txn, NAMESPACE, pending.lease.id))
        pending.ended = True
        self.services.leases.deleted()

    @_k8s
    async def get_container(self, cid: str) -> ContainerRecord:
        return self.services.containers.get(cid)

    @_k8s
    async def list_containers(self, *filters: str) -> list[ContainerRecord]:
        return self.services.containers.list(list(filters))

    @_k8s
    async def update_container(self, record: ContainerRecord, *paths: str) -> None:
        await self.services.containers.update(record, list(paths))

    @_k8s
    async def delete_container(self, cid: str) -> None:
        """Idempotent."""
        with contextlib.suppress(NotFound):
            await self.services.containers.delete(cid)

    @_k8s
    async def delete_container_and_snapshot(self, cid: str, snapshot_key: str) -> None:
        """Delete the container record and its rootfs snapshot in one transaction (one
        commit where containerd's client makes two); idempotent: either may be gone
        already. Events and the collection request are those of the two deletes."""
        containers, snapshots = self.services.containers, self._snapshots()
        lease = leases_context.get()

        def txn_fn(txn) -> tuple[bool, bool]:
            return (containers.delete_in(txn, NAMESPACE, cid),
                    snapshots.remove_in(txn, NAMESPACE, lease, snapshot_key))

        had_record, had_snapshot = await containers.db.update(txn_fn)
        if had_record:
            containers.deleted(cid)
        if had_snapshot:
            snapshots.removed(NAMESPACE, snapshot_key)

    # -- tasks ------------------------------------------------------------------------

    @_k8s
    async def create_task(self, cid: str, rootfs: Sequence[Mount], *, stdout: str = "", stderr: str = "",
                          stdin: str = "", terminal: bool = False, options: any_pb2.Any | None = None) -> int:
        task = await self.services.tasks.create(cid, list(rootfs), stdin=stdin, stdout=stdout, stderr=stderr,
                                                terminal=terminal, options=options)
        return task.pid

    @_k8s
    async def start_task(self, cid: str, exec_id: str = "") -> int:
        return await self.services.tasks.task(cid).start(exec_id)

    @_k8s
    async def kill(self, cid: str, signal: int, *, all: bool = False, exec_id: str = "") -> None:
        await self.services.tasks.task(cid).kill(signal, all, exec_id)

    @_k8s
    async def wait(self, cid: str, exec_id: str = "") -> tuple[int, int]:
        """Block until the process exits: ``(exit status, exited at ns)``."""
        exit = await self.services.tasks.task(cid).wait(exec_id)
        return exit.exit_status, exit.exited_at_ns

    @_k8s
    async def task_state(self, cid: str, exec_id: str = "") -> ProcessState:
        """Raises :class:`NotFound` when there is no task, :class:`DeadlineExceeded` when
        its shim does not answer in time."""
        task = self.services.tasks.task(cid)
        try:
            return await asyncio.wait_for(task.state(exec_id), TASK_STATE_TIMEOUT)
        except TimeoutError as exc:
            raise DeadlineExceeded(f"task {cid}: no state from its shim in {TASK_STATE_TIMEOUT:g}s") from exc

    @_k8s
    async def delete_task(self, cid: str) -> tuple[int, int] | None:
        """Delete the task (it must not be running): ``(exit status, exited at)``; None when
        there was no task."""
        try:
            exit = await self.services.tasks.delete(cid)
        except NotFound:
            return None
        return exit.exit_status, exit.exited_at_ns

    @_k8s
    async def exec(self, cid: str, exec_id: str, process: Mapping[str, Any], *, stdout: str = "",
                   stderr: str = "", terminal: bool = False, stdin: str = "") -> None:
        await self.services.tasks.task(cid).exec(exec_id, dict(process), stdin=stdin, stdout=stdout, stderr=stderr,
                                                 terminal=terminal)

    @_k8s
    async def resize_pty(self, cid: str, width: int, height: int, exec_id: str = "") -> None:
        await self.services.tasks.task(cid).resize_pty(width, height, exec_id)

    @_k8s
    async def close_io(self, cid: str, exec_id: str = "") -> None:
        """Close the process's stdin (it reads EOF once every writer is gone)."""
        await self.services.tasks.task(cid).close_io(exec_id, True)

    @_k8s
    async def delete_process(self, cid: str, exec_id: str) -> None:
        with contextlib.suppress(NotFound):
            await self.services.tasks.task(cid).delete(exec_id)

    @_k8s
    async def update_task(self, cid: str, resources: Mapping[str, Any]) -> None:
        await self.services.tasks.task(cid).update(dict(resources))

    @_k8s
    async def metrics(self, ids: Sequence[str]) -> dict[str, any_pb2.Any]:
        """cgroup metrics of the tasks ``ids`` (those without a task are left out)."""
        tasks = {t.id: t for t in self.services.tasks.list()}
        wanted = [tasks[i] for i in dict.fromkeys(ids) if i in tasks]
        results = await asyncio.gather(*(t.stats() for t in wanted), return_exceptions=True)
        out = {}
        for task, result in zip(wanted, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result
                continue  # gone meanwhile, or its shim does not answer: no figures
            out[task.id] = result
        return out

    @_k8s
    async def pids(self, cid: str) -> list[int]:
        return [p.pid for p in await self.services.tasks.pids(cid)]


__all__ = ["NAMESPACE", "Daemon", "Services", "image_record", "runtime_options"]
