"""The CRI plugin's handle on the daemon: containerd's v1 API over the daemon's own unix
socket, in namespace ``k8s.io`` (containerd's CRI plugin drives containerd through its
client in the same way).

The connection is made lazily, on first use, because the plugin is created while the
daemon is still starting and nothing serves the socket yet. Pulling (and unpacking) goes
through :class:`pycontainerd.client.AsyncClient`; everything else uses the generated stubs
directly, with errors mapped back to :mod:`pycontainerd.errdefs` classes.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import json
import secrets
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import grpc
from google.protobuf import any_pb2, field_mask_pb2

from .. import imagespec
from ..api.runtime.runc.options import oci_pb2 as runc_options
from ..api.services.containers.v1 import containers_pb2, containers_pb2_grpc
from ..api.services.images.v1 import images_pb2, images_pb2_grpc
from ..api.services.leases.v1 import leases_pb2, leases_pb2_grpc
from ..api.services.snapshots.v1 import snapshots_pb2, snapshots_pb2_grpc
from ..api.services.tasks.v1 import tasks_pb2, tasks_pb2_grpc
from ..api.types.task import task_pb2 as task_types
from ..descriptor import Descriptor
from ..errdefs import AlreadyExists, ContainerdError, InvalidArgument, NotFound, ResourceExhausted
from ..records.containers import Container as ContainerRecord
from ..records.images import Image
from ..mount import Mount
from ..remotes import mediatypes, platforms
from ..remotes.fetch import select_platforms
from ..wire.convert import mount_from_pb, mount_to_pb
from ..wire.errors import from_rpc_error
from ..wire.records import container_from_pb, container_to_pb, image_from_pb, image_to_pb

NAMESPACE = "k8s.io"
LEASE_HEADER = "containerd-lease"
PROCESS_SPEC_URL = "types.containerd.io/opencontainers/runtime-spec/1/Process"
RESOURCES_URL = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources"
PULL_LEASE_PREFIX = "cri-pull-"

_lease: contextvars.ContextVar[str | None] = contextvars.ContextVar("cri_lease", default=None)

STATUS_NAMES = {task_types.UNKNOWN: "unknown", task_types.CREATED: "created", task_types.RUNNING: "running",
                task_types.STOPPED: "stopped", task_types.PAUSED: "paused", task_types.PAUSING: "pausing"}


@dataclass(frozen=True)
class TaskState:
    pid: int
    status: str        # created | running | stopped | paused | pausing | unknown
    exit_status: int
    exited_at_ns: int


@dataclass(frozen=True)
class ResolvedImage:
    """An image record resolved for this host's platform."""

    record: Image
    config_digest: str
    config: dict[str, Any]
    chain_id: str
    size: int
    manifest_digest: str

    @property
    def id(self) -> str:
        return self.config_digest


class BackendError(ContainerdError):
    """The daemon answered with a status that has no error class (``UNKNOWN``, e.g. runc's
    own refusal): kept as ``UNKNOWN`` with the daemon's message."""

    code = "UNKNOWN"

    def __init__(self, message: str) -> None:
        Exception.__init__(self, message)
        self.context = message


def _map(exc: grpc.RpcError) -> Exception:
    err = from_rpc_error(exc)
    if isinstance(err, ContainerdError):
        return err
    details = exc.details() if hasattr(exc, "details") else str(exc)
    return BackendError(details or str(exc))


class Backend:
    """containerd's API for the CRI plugin (see module doc).

    Args:
        address: the daemon's unix socket.
        snapshotter: the snapshotter containers and images use.
    """

    def __init__(self, address: str, snapshotter: str = "overlayfs", namespace: str = NAMESPACE) -> None:
        self.address = address
        self.snapshotter = snapshotter
        self.namespace = namespace
        self._client = None
        self._lock = asyncio.Lock()
        self._resolved: dict[str, tuple[str, dict[str, Any], str, int, str]] = {}

    async def client(self):
        """The connected :class:`~pycontainerd.client.AsyncClient` (connects on first use)."""
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is None:
                from ..client import AsyncClient

                client = AsyncClient(self.address, namespace=self.namespace, timeout=60.0, retries=50)
                try:
                    await client.connect()
                except BaseException:
                    await client.close()
                    raise
                ch = client.conn.channel
                self._images = images_pb2_grpc.ImagesStub(ch)
                self._containers = containers_pb2_grpc.ContainersStub(ch)
                self._snapshots = snapshots_pb2_grpc.SnapshotsStub(ch)
                self._tasks = tasks_pb2_grpc.TasksStub(ch)
                self._leases = leases_pb2_grpc.LeasesStub(ch)
                self._client = client
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    def md(self) -> tuple[tuple[str, str], ...]:
        md = [("containerd-namespace", self.namespace)]
        lease = _lease.get()
        if lease:
            md.append((LEASE_HEADER, lease))
        return tuple(md)

    async def _call(self, stub_name: str, method: str, request, timeout: float | None = None):
        await self.client()
        fn = getattr(getattr(self, stub_name), method)
        try:
            return await fn(request, metadata=self.md(), timeout=timeout)
        except grpc.RpcError as exc:
            raise _map(exc) from exc

    # -- leases -----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lease(self, expire: timedelta = timedelta(hours=1)) -> AsyncIterator[str]:
        """Everything created inside is kept from garbage collection until the block ends."""
        lease_id = f"cri-{time.time_ns()}-{secrets.token_hex(3)}"
        when = (datetime.now(timezone.utc) + expire).strftime("%Y-%m-%dT%H:%M:%SZ")
        await self._call("_leases", "Create", leases_pb2.CreateRequest(
            id=lease_id, labels={"containerd.io/gc.expire": when}))
        token = _lease.set(lease_id)
        try:
            yield lease_id
        finally:
            _lease.reset(token)
            with contextlib.suppress(ContainerdError):
                await self._call("_leases", "Delete", leases_pb2.DeleteRequest(id=lease_id))

    # -- images -----------------------------------------------------------------------

    async def pull(self, ref: str, resolver) -> Image:
        """Fetch ``ref`` with ``resolver`` and unpack it for this host. Returns the record.

        The pull runs under a lease of its own, named after ``ref`` (expiring in 24 hours,
        as containerd's client leases do). When the disk fills (``ResourceExhausted``) the
        lease stays: what was downloaded stays with it, and the next pull of ``ref`` resumes
        the partial blob with a ``Range`` request once there is room; any other end deletes
        the lease. A failed pull leaves no image record it made (containerd records the
        image only once it is unpacked)."""
        from ..client.connection import using_lease

        client = await self.client()
        lease_id = PULL_LEASE_PREFIX + hashlib.sha256(ref.encode()).hexdigest()[:32]
        with contextlib.suppress(AlreadyExists):  # kept by a pull the disk cut short
            await client.create_lease(lease_id, {"io.cri-containerd.pull": ref})
        existed = await self.get_image(ref) is not None
        try:
            with using_lease(lease_id):
                img = await client.pull(ref, resolver=resolver, snapshotter=self.snapshotter)
        except BaseException as exc:
            if not existed:
                with contextlib.suppress(Exception):
                    await self.delete_image(ref)
            if not isinstance(exc, ResourceExhausted):
                with contextlib.suppress(Exception):
                    await client.delete_lease(lease_id)
            raise
        await client.delete_lease(lease_id)
        return img.record

    async def get_image(self, name: str) -> Image | None:
        try:
            resp = await self._call("_images", "Get", images_pb2.GetImageRequest(name=name))
        except NotFound:
            return None
        return image_from_pb(resp.image)

    async def list_images(self, *filters: str) -> list[Image]:
        resp = await self._call("_images", "List", images_pb2.ListImagesRequest(filters=list(filters)))
        return [image_from_pb(i) for i in resp.images]

    async def put_image(self, image: Image) -> None:
        """Create ``image``, or update its target and labels if the name exists."""
        try:
            await self._call("_images", "Create", images_pb2.CreateImageRequest(image=image_to_pb(image)))
        except AlreadyExists:
            await self._call("_images", "Update", images_pb2.UpdateImageRequest(
                image=image_to_pb(image), update_mask=field_mask_pb2.FieldMask(paths=["target", "labels"])))

    async def delete_image(self, name: str) -> None:
        """Idempotent."""
        with contextlib.suppress(NotFound):
            await self._call("_images", "Delete", images_pb2.DeleteImageRequest(name=name))

    async def read_blob(self, digest: str) -> bytes:
        client = await self.client()
        return await client.content.read_all(digest)

    async def resolve_image(self, record: Image) -> ResolvedImage:
        """Manifest, config, chain id and size of ``record`` for this host's platform
        (cached by target digest). Raises :class:`NotFound` when content is missing or no
        manifest matches the platform."""
        target = record.target
        hit = self._resolved.get(target.digest)
        if hit is None:
            size = target.size
            desc = target
            doc: dict[str, Any] = {}
            for _ in range(4):
                doc = imagespec.parse_json(await self.read_blob(desc.digest), f"manifest {desc.digest}")
                if not mediatypes.is_index(desc.media_type) and "manifests" not in doc:
                    break
                child = select_platforms(imagespec.index_children(doc), platforms.default(), 1)[0]
                desc = child
                size += child.size
            else:
                raise InvalidArgument(f"image {record.name}: indexes nested too deep")
            config_desc, layers = imagespec.manifest_children(doc)
            config = imagespec.parse_json(await self.read_blob(config_desc.digest), f"config {config_desc.digest}")
            chain = imagespec.chain_ids(imagespec.diff_ids(config))
            size += config_desc.size + sum(layer.size for layer in layers)
            hit = (config_desc.digest, config, chain[-1] if chain else "", size, desc.digest)
            self._resolved[target.digest] = hit
        return ResolvedImage(record, hit[0], hit[1], hit[2], hit[3], hit[4])

    async def unpack(self, name: str) -> None:
        client = await self.client()
        img = await client.get_image(name)
        await img.unpack(self.snapshotter)

    # -- snapshots --------------------------------------------------------------------

    async def snapshot_exists(self, key: str) -> bool:
        try:
            await self._call("_snapshots", "Stat", snapshots_pb2.StatSnapshotRequest(snapshotter=self.snapshotter,
                                                                                     key=key))
            return True
        except NotFound:
            return False

    async def prepare(self, key: str, parent: str, labels: Mapping[str, str] | None = None) -> list[Mount]:
        resp = await self._call("_snapshots", "Prepare", snapshots_pb2.PrepareSnapshotRequest(
            snapshotter=self.snapshotter, key=key, parent=parent, labels=dict(labels or {})))
        return [mount_from_pb(m) for m in resp.mounts]

    async def view(self, key: str, parent: str, labels: Mapping[str, str] | None = None) -> list[Mount]:
        """A read-only snapshot of ``parent`` (an image volume): its mounts; those of the
        existing view when ``key`` is one already."""
        try:
            resp = await self._call("_snapshots", "View", snapshots_pb2.ViewSnapshotRequest(
                snapshotter=self.snapshotter, key=key, parent=parent, labels=dict(labels or {})))
        except AlreadyExists:
            return await self.mounts(key)
        return [mount_from_pb(m) for m in resp.mounts]

    async def mounts(self, key: str) -> list[Mount]:
        resp = await self._call("_snapshots", "Mounts", snapshots_pb2.MountsRequest(snapshotter=self.snapshotter,
                                                                                   key=key))
        return [mount_from_pb(m) for m in resp.mounts]

    async def remove_snapshot(self, key: str) -> None:
        """Idempotent."""
        with contextlib.suppress(NotFound):
            await self._call("_snapshots", "Remove", snapshots_pb2.RemoveSnapshotRequest(
                snapshotter=self.snapshotter, key=key))

    async def snapshot_usage(self, key: str) -> tuple[int, int]:
        """``(bytes, inodes)`` used by the active snapshot ``key``."""
        resp = await self._call("_snapshots", "Usage", snapshots_pb2.UsageRequest(snapshotter=self.snapshotter,
                                                                                 key=key))
        return resp.size, resp.inodes

    # -- containers -------------------------------------------------------------------

    async def create_container(self, record: ContainerRecord) -> None:
        await self._call("_containers", "Create", containers_pb2.CreateContainerRequest(
            container=container_to_pb(record)))

    async def get_container(self, cid: str) -> ContainerRecord:
        resp = await self._call("_containers", "Get", containers_pb2.GetContainerRequest(id=cid))
        return container_from_pb(resp.container)

    async def list_containers(self, *filters: str) -> list[ContainerRecord]:
        """Through ``ListStream``, one record a message, as containerd's client lists: the
        records of a node's containers (their CRI config twice: labels and metadata) can
        outgrow the 16 MiB a single ``List`` reply may carry."""
        await self.client()
        call = self._containers.ListStream(containers_pb2.ListContainersRequest(filters=list(filters)),
                                           metadata=self.md())
        try:
            return [container_from_pb(m.container) async for m in call]
        except grpc.RpcError as exc:
            raise _map(exc) from exc

    async def update_container(self, record: ContainerRecord, *paths: str) -> None:
        await self._call("_containers", "Update", containers_pb2.UpdateContainerRequest(
            container=container_to_pb(record), update_mask=field_mask_pb2.FieldMask(paths=list(paths))))

    async def delete_container(self, cid: str) -> None:
        """Idempotent."""
        with contextlib.suppress(NotFound):
            await self._call("_containers", "Delete", containers_pb2.DeleteContainerRequest(id=cid))

    # -- tasks ------------------------------------------------------------------------

    @staticmethod
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

    async def create_task(self, cid: str, rootfs: Sequence[Mount], *, stdout: str = "", stderr: str = "",
                          stdin: str = "", terminal: bool = False, options: any_pb2.Any | None = None) -> int:
        req = tasks_pb2.CreateTaskRequest(container_id=cid, rootfs=[mount_to_pb(m) for m in rootfs], stdin=stdin,
                                          stdout=stdout, stderr=stderr, terminal=terminal)
        if options is not None:
            req.options.CopyFrom(options)
        return (await self._call("_tasks", "Create", req)).pid

    async def start_task(self, cid: str, exec_id: str = "") -> int:
        return (await self._call("_tasks", "Start", tasks_pb2.StartRequest(container_id=cid, exec_id=exec_id))).pid

    async def kill(self, cid: str, signal: int, *, all: bool = False, exec_id: str = "") -> None:
        await self._call("_tasks", "Kill", tasks_pb2.KillRequest(container_id=cid, exec_id=exec_id, signal=signal,
                                                                 all=all))

    async def wait(self, cid: str, exec_id: str = "") -> tuple[int, int]:
        """Block until the process exits: ``(exit status, exited at ns)``."""
        resp = await self._call("_tasks", "Wait", tasks_pb2.WaitRequest(container_id=cid, exec_id=exec_id))
        return resp.exit_status, resp.exited_at.ToNanoseconds()

    async def task_state(self, cid: str, exec_id: str = "") -> TaskState:
        """Raises :class:`NotFound` when there is no task."""
        resp = await self._call("_tasks", "Get", tasks_pb2.GetRequest(container_id=cid, exec_id=exec_id), timeout=30)
        p = resp.process
        return TaskState(p.pid, STATUS_NAMES.get(p.status, "unknown"), p.exit_status, p.exited_at.ToNanoseconds())

    async def delete_task(self, cid: str) -> tuple[int, int] | None:
        """Delete the task (it must not be running): ``(exit status, exited at)``; None when
        there was no task."""
        try:
            resp = await self._call("_tasks", "Delete", tasks_pb2.DeleteTaskRequest(container_id=cid))
        except NotFound:
            return None
        return resp.exit_status, resp.exited_at.ToNanoseconds()

    async def exec(self, cid: str, exec_id: str, process: Mapping[str, Any], *, stdout: str = "",
                   stderr: str = "", terminal: bool = False, stdin: str = "") -> None:
        spec = any_pb2.Any(type_url=PROCESS_SPEC_URL, value=json.dumps(process).encode())
        await self._call("_tasks", "Exec", tasks_pb2.ExecProcessRequest(
            container_id=cid, exec_id=exec_id, stdin=stdin, stdout=stdout, stderr=stderr, terminal=terminal,
            spec=spec))

    async def resize_pty(self, cid: str, width: int, height: int, exec_id: str = "") -> None:
        await self._call("_tasks", "ResizePty", tasks_pb2.ResizePtyRequest(container_id=cid, exec_id=exec_id,
                                                                            width=width, height=height))

    async def close_io(self, cid: str, exec_id: str = "") -> None:
        """Close the process's stdin (it reads EOF once every writer is gone)."""
        await self._call("_tasks", "CloseIO", tasks_pb2.CloseIORequest(container_id=cid, exec_id=exec_id, stdin=True))

    async def delete_process(self, cid: str, exec_id: str) -> None:
        with contextlib.suppress(NotFound):
            await self._call("_tasks", "DeleteProcess", tasks_pb2.DeleteProcessRequest(container_id=cid,
                                                                                        exec_id=exec_id))

    async def update_task(self, cid: str, resources: Mapping[str, Any]) -> None:
        await self._call("_tasks", "Update", tasks_pb2.UpdateTaskRequest(
            container_id=cid, resources=any_pb2.Any(type_url=RESOURCES_URL, value=json.dumps(resources).encode())))

    async def metrics(self, ids: Sequence[str]) -> dict[str, any_pb2.Any]:
        """cgroup metrics of the tasks ``ids`` (those without a task are left out)."""
        if not ids:
            return {}
        resp = await self._call("_tasks", "Metrics", tasks_pb2.MetricsRequest(filters=[f"id=={i}" for i in ids]))
        return {m.id: m.data for m in resp.metrics}

    async def pids(self, cid: str) -> list[int]:
        resp = await self._call("_tasks", "ListPids", tasks_pb2.ListPidsRequest(container_id=cid))
        return [p.pid for p in resp.processes]


def image_record(name: str, target: Descriptor, managed: bool = True) -> Image:
    labels = {"io.cri-containerd.image": "managed"} if managed else {}
    return Image(name=name, target=target, labels=labels)


