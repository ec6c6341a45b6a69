"""``AsyncClient``: one connection to the daemon and everything on it, after containerd's
Go client (``client.go``).

High level (what most programs need)::

    async with AsyncClient("/run/pycontainerd/pycontainerd.sock") as client:
        image = await client.pull("docker.io/library/busybox:latest")
        container = await client.new_container("hello", image, with_process_args("echo", "hi"))
        task = await container.new_task(stdio=cio.with_stdio())
        await task.start()
        status = await task.wait()
        await task.delete()
        await container.delete()

Low level: the stores as the daemon's services offer them (``create_image``,
``create_container``, ``client.content``, ``client.snapshotter(name)``, leases, events).

Every call sends the client's namespace (``containerd-namespace`` metadata) and, inside
``async with client.lease():``, the lease (``containerd-lease``). Errors are the typed
exceptions of :mod:`pycontainerd.errdefs`, mapped from gRPC status codes.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import IO, TYPE_CHECKING, Any

import grpc
from google.protobuf import empty_pb2, field_mask_pb2

from .. import namespaces as ns_mod
from ..errdefs import AlreadyExists, InvalidArgument, NotFound
from ..lazy import LazyModule
from .connection import (
    DEFAULT_ADDRESS,
    DEFAULT_SNAPSHOTTER,
    Connection,
    Stub,
    TLSConfig,
    current_lease,
    mapped,
    mapped_stream,
    using_lease,
)

if TYPE_CHECKING:
    from ..api.services.containers.v1 import containers_pb2, containers_pb2_grpc
    from ..api.services.events.v1 import events_pb2, events_pb2_grpc
    from ..api.services.images.v1 import images_pb2, images_pb2_grpc
    from ..api.services.introspection.v1 import introspection_pb2, introspection_pb2_grpc
    from ..api.services.leases.v1 import leases_pb2, leases_pb2_grpc
    from ..api.services.namespaces.v1 import namespace_pb2, namespace_pb2_grpc
    from ..api.services.tasks.v1 import tasks_pb2, tasks_pb2_grpc
    from ..api.services.version.v1 import version_pb2_grpc
    from ..descriptor import Descriptor
    from ..events.exchange import Envelope
    from ..oci import opts as oci_opts
    from ..records.containers import Container
    from ..records.images import Image
    from ..records.leases import Lease
    from ..records.namespaces import Namespace
    from ..wire.records import containers as container_records
    from ..wire.records import images as image_records
    from ..wire.records import leases as lease_records
    from ..wire.records import namespaces as namespace_records
    from .containers import AsyncContainer
    from .content import AsyncContentStore
    from .images import AsyncImage
    from .snapshots import AsyncSnapshotter, DiffClient
    from .tasks import ProcessStatus, TaskMetrics
else:
    # A service's generated modules load on its first call, the records' converters with
    # the first record: ``pyctr version`` loads two services, ``containers ls`` one.
    _SERVICES = "pycontainerd.api.services"
    containers_pb2 = LazyModule(f"{_SERVICES}.containers.v1.containers_pb2")
    containers_pb2_grpc = LazyModule(f"{_SERVICES}.containers.v1.containers_pb2_grpc")
    events_pb2 = LazyModule(f"{_SERVICES}.events.v1.events_pb2")
    events_pb2_grpc = LazyModule(f"{_SERVICES}.events.v1.events_pb2_grpc")
    images_pb2 = LazyModule(f"{_SERVICES}.images.v1.images_pb2")
    images_pb2_grpc = LazyModule(f"{_SERVICES}.images.v1.images_pb2_grpc")
    introspection_pb2 = LazyModule(f"{_SERVICES}.introspection.v1.introspection_pb2")
    introspection_pb2_grpc = LazyModule(f"{_SERVICES}.introspection.v1.introspection_pb2_grpc")
    leases_pb2 = LazyModule(f"{_SERVICES}.leases.v1.leases_pb2")
    leases_pb2_grpc = LazyModule(f"{_SERVICES}.leases.v1.leases_pb2_grpc")
    namespace_pb2 = LazyModule(f"{_SERVICES}.namespaces.v1.namespace_pb2")
    namespace_pb2_grpc = LazyModule(f"{_SERVICES}.namespaces.v1.namespace_pb2_grpc")
    tasks_pb2 = LazyModule(f"{_SERVICES}.tasks.v1.tasks_pb2")
    tasks_pb2_grpc = LazyModule(f"{_SERVICES}.tasks.v1.tasks_pb2_grpc")
    version_pb2_grpc = LazyModule(f"{_SERVICES}.version.v1.version_pb2_grpc")
    container_records = LazyModule("pycontainerd.wire.records.containers")
    image_records = LazyModule("pycontainerd.wire.records.images")
    lease_records = LazyModule("pycontainerd.wire.records.leases")
    namespace_records = LazyModule("pycontainerd.wire.records.namespaces")

DEFAULT_RUNTIME = "io.containerd.runc.v2"

Progress = Any
"""``progress(key, offset, total)`` — see :meth:`AsyncClient.pull`."""


@dataclass(frozen=True)
class Version:
    version: str
    revision: str


@dataclass(frozen=True)
class ServerInfo:
    """The daemon's identity: ``uuid`` (stable across restarts)."""

    uuid: str


@dataclass(frozen=True)
class PluginInfo:
    """One plugin of the daemon: ``type`` (``io.containerd.snapshotter.v1``), ``id``,
    ``requires`` (types), ``platforms`` (``os/arch``), ``exports``, ``capabilities``, and
    ``error`` (the init error message, ``""`` when it loaded; containing ``skip plugin``
    when it opted out)."""

    type: str
    id: str
    requires: list[str] = field(default_factory=list)
    platforms: list[str] = field(default_factory=list)
    exports: dict[str, str] = field(default_factory=dict)
    capabilities: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def status(self) -> str:
        """``ok``, ``skip`` or ``error`` (as ``ctr plugins ls`` shows)."""
        if not self.error:
            return "ok"
        return "skip" if "skip plugin" in self.error else "error"


def _image(client: AsyncClient, pb_image) -> AsyncImage:
    from .images import AsyncImage

    img = image_records.image_from_pb(pb_image)
    return AsyncImage(img.name, img.target, dict(img.labels), pb_image.created_at.ToNanoseconds(),
                      pb_image.updated_at.ToNanoseconds(), client)


def _record(image: Image | AsyncImage) -> Image:
    from .images import AsyncImage  # (the record types load with the calls that use them)

    if isinstance(image, AsyncImage):
        return image.record
    return image


def _container(pb_container) -> Container:
    return replace(container_records.container_from_pb(pb_container),
                   created_at=pb_container.created_at.ToNanoseconds(),
                   updated_at=pb_container.updated_at.ToNanoseconds())


class AsyncClient:
    """A client of containerd's v1 API (pycontainerd or containerd).

    Args:
        address: unix socket path (``unix://…`` too), or ``host:port``/``tcp://host:port``
            with ``tls`` (or ``credentials``).
        namespace: namespace for every call (``containerd-namespace`` metadata).
        timeout: seconds to wait for the daemon when connecting (raises ``Unavailable``).
        retries: how often connecting is retried while the daemon answers ``UNAVAILABLE``.
        tls: client TLS files for a TCP listener; ``credentials``: ready gRPC credentials.
        fifo_dir: where :mod:`.cio` creators make stdio fifos (default
            ``/run/pycontainerd/fifo``).

    Connect with ``async with AsyncClient(...) as client:`` (or ``await client.connect()``).
    """

    # the services' stubs: each made, and its generated modules imported, on first use
    _version = Stub(version_pb2_grpc, "VersionStub")
    _introspection = Stub(introspection_pb2_grpc, "IntrospectionStub")
    _namespaces = Stub(namespace_pb2_grpc, "NamespacesStub")
    _images = Stub(images_pb2_grpc, "ImagesStub")
    _leases = Stub(leases_pb2_grpc, "LeasesStub")
    _containers = Stub(containers_pb2_grpc, "ContainersStub")
    _tasks = Stub(tasks_pb2_grpc, "TasksStub")
    _events = Stub(events_pb2_grpc, "EventsStub")

    def __init__(self, address: str = DEFAULT_ADDRESS, namespace: str = ns_mod.DEFAULT, timeout: float = 10.0,
                 credentials: grpc.ChannelCredentials | None = None, *, retries: int = 3,
                 tls: TLSConfig | None = None, fifo_dir: str | None = None) -> None:
        self.conn = Connection(address, namespace, timeout, credentials, tls=tls)
        self.timeout = timeout
        self.retries = retries
        self.fifo_dir = fifo_dir
        self._content: AsyncContentStore | None = None
        self._diff: DiffClient | None = None

    @property
    def content(self) -> AsyncContentStore:
        """The daemon's content store."""
        if self._content is None:
            from .content import AsyncContentStore

            self._content = AsyncContentStore(self.conn)
        return self._content

    @property
    def diff(self) -> DiffClient:
        """The daemon's differ (applies layers to snapshots, makes diffs)."""
        if self._diff is None:
            from .snapshots import DiffClient

            self._diff = DiffClient(self.conn)
        return self._diff

    @property
    def namespace(self) -> str:
        """The namespace every call is made in (settable)."""
        return self.conn.namespace

    @namespace.setter
    def namespace(self, name: str) -> None:
        self.conn.namespace = name

    @property
    def address(self) -> str:
        return self.conn.address

    async def connect(self) -> Version:
        """Wait for the daemon (``timeout``; ``retries`` on ``UNAVAILABLE``); returns its
        version. Raises :class:`~pycontainerd.errdefs.Unavailable`."""
        return await self.conn.connect(self.version, self.timeout, self.retries)

    async def __aenter__(self) -> AsyncClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        await self.conn.close()

    def md(self):
        return self.conn.metadata()

    def snapshotter(self, name: str = DEFAULT_SNAPSHOTTER) -> AsyncSnapshotter:
        """The daemon's snapshotter ``name`` (``overlayfs``, ``native``)."""
        from .snapshots import AsyncSnapshotter

        return AsyncSnapshotter(self.conn, name)

    # -- version, introspection, namespaces -------------------------------------------
    @mapped
    async def version(self) -> Version:
        """The daemon's version and revision."""
        resp = await self._version.Version(empty_pb2.Empty(), metadata=self.md())
        return Version(resp.version, resp.revision)

    @mapped
    async def server(self) -> ServerInfo:
        resp = await self._introspection.Server(empty_pb2.Empty(), metadata=self.md())
        return ServerInfo(resp.uuid)

    @mapped
    async def plugins(self, *filters: str) -> list[PluginInfo]:
        """The daemon's plugins matching any filter (``type==io.containerd.snapshotter.v1``)."""
        resp = await self._introspection.Plugins(introspection_pb2.PluginsRequest(filters=list(filters)),
                                                 metadata=self.md())
        out = []
        for p in resp.plugins:
            plats = ["/".join(x for x in (q.os, q.architecture, q.variant) if x) for q in p.platforms]
            out.append(PluginInfo(p.type, p.id, list(p.requires), plats, dict(p.exports), list(p.capabilities),
                                  p.init_err.message if p.HasField("init_err") else ""))
        return out

    @mapped
    async def list_namespaces(self) -> list[Namespace]:
        resp = await self._namespaces.List(namespace_pb2.ListNamespacesRequest(), metadata=self.md())
        return [namespace_records.namespace_from_pb(n) for n in resp.namespaces]

    @mapped
    async def create_namespace(self, name: str, labels: Mapping[str, str] | None = None) -> Namespace:
        """Raises ``AlreadyExists``."""
        req = namespace_pb2.CreateNamespaceRequest(namespace=namespace_pb2.Namespace(name=name, labels=labels or {}))
        resp = await self._namespaces.Create(req, metadata=self.md())
        return namespace_records.namespace_from_pb(resp.namespace)

    @mapped
    async def set_namespace_labels(self, name: str, labels: Mapping[str, str]) -> Namespace:
        """Set (empty value: remove) the given labels of namespace ``name``."""
        req = namespace_pb2.UpdateNamespaceRequest(
            namespace=namespace_pb2.Namespace(name=name, labels={k: v for k, v in labels.items() if v}),
            update_mask=field_mask_pb2.FieldMask(paths=[f"labels.{k}" for k in labels]))
        resp = await self._namespaces.Update(req, metadata=self.md())
        return namespace_records.namespace_from_pb(resp.namespace)

    @mapped
    async def delete_namespace(self, name: str) -> None:
        """Raises ``NotFound``, or ``FailedPrecondition`` while the namespace holds anything."""
        await self._namespaces.Delete(namespace_pb2.DeleteNamespaceRequest(name=name), metadata=self.md())

    # -- images -----------------------------------------------------------------------
    @mapped
    async def get_image(self, name: str) -> AsyncImage:
        """Raises :class:`NotFound`."""
        resp = await self._images.Get(images_pb2.GetImageRequest(name=name), metadata=self.md())
        return _image(self, resp.image)

    @mapped
    async def list_images(self, *filters: str) -> list[AsyncImage]:
        """Images matching any filter (``name==…``, ``labels."k"==v``), all when none."""
        resp = await self._images.List(images_pb2.ListImagesRequest(filters=list(filters)), metadata=self.md())
        return [_image(self, i) for i in resp.images]

    @mapped
    async def create_image(self, image: Image | AsyncImage) -> AsyncImage:
        """Raises ``AlreadyExists``."""
        resp = await self._images.Create(images_pb2.CreateImageRequest(image=image_records.image_to_pb(_record(image))),
                                         metadata=self.md())
        return _image(self, resp.image)

    @mapped
    async def update_image(self, image: Image | AsyncImage, *paths: str) -> AsyncImage:
        """Update the record (``paths``: ``target``, ``labels``, ``labels.<key>``; none = all)."""
        req = images_pb2.UpdateImageRequest(image=image_records.image_to_pb(_record(image)),
                                            update_mask=field_mask_pb2.FieldMask(paths=list(paths)))
        return _image(self, (await self._images.Update(req, metadata=self.md())).image)

    @mapped
    async def delete_image(self, name: str, sync: bool = False) -> None:
        """Delete the image record; with ``sync`` wait until garbage collection ran.
        Raises ``NotFound``."""
        await self._images.Delete(images_pb2.DeleteImageRequest(name=name, sync=sync), metadata=self.md())

    async def tag_image(self, source: str, target: str, force: bool = False) -> AsyncImage:
        """A new image ``target`` with the target of ``source`` (``ctr images tag``);
        ``force`` replaces an existing ``target``."""
        from ..records.images import Image

        src = await self.get_image(source)
        record = Image(target, src.target, dict(src.labels))
        try:
            return await self.create_image(record)
        except AlreadyExists:
            if not force:
                raise
            return await self.update_image(record)

    async def pull(self, ref: str, *, platform: str | None = None, all_platforms: bool = False, unpack: bool = True,
                   snapshotter: str = DEFAULT_SNAPSHOTTER, plain_http: bool | list[str] = False,
                   resolver: Any = None, progress: Progress | None = None) -> AsyncImage:
        """Fetch ``ref`` from its registry into the daemon and record the image; unpack it
        for ``platform`` (default: this host's) into ``snapshotter``.

        ``progress(key, offset, total)`` is called as blob bytes arrive (``key`` is
        ``manifest-sha256:…``, ``config-sha256:…`` or ``layer-sha256:…``; sizes in bytes),
        and once with key ``"unpacking <platform>"`` before unpacking. ``plain_http``:
        ``True`` or the hosts to reach over plain HTTP. Raises ``NotFound`` (no such image,
        no matching platform), ``Unauthorized``, ``FailedPrecondition`` (digest mismatch),
        ``InvalidArgument`` (malformed manifest).
        """
        from ..images import pull as pull_mod
        from .images import matcher_for

        record = await pull_mod.pull(self, ref, platform=platform, unpack=False, snapshotter=snapshotter,
                                     resolver=resolver, plain_http=plain_http, progress=progress,
                                     matcher=matcher_for(platform, all_platforms))
        image = await self.get_image(record.name)
        if unpack:
            if progress is not None:
                from ..remotes import platforms as plats

                progress(f"unpacking {platform or plats.default_string()}", 0, 0)
            await image.unpack(snapshotter, platform)
        return image

    async def fetch(self, ref: str, **kwargs: Any) -> AsyncImage:
        """:meth:`pull` without unpacking (``ctr content fetch``)."""
        return await self.pull(ref, unpack=False, **kwargs)

    async def push(self, ref: str, image: str | AsyncImage | Image | None = None, *, platform: str | None = None,
                   all_platforms: bool = True, plain_http: bool | list[str] = False, resolver: Any = None,
                   credentials: Any = None, progress: Progress | None = None) -> Descriptor:
        """Push the local image ``image`` (default: the image named ``ref``) to ``ref``;
        returns the pushed target. ``progress(key, offset, total)`` as bytes go out.
        Raises ``NotFound`` for a missing image or blob, the remotes' errors otherwise."""
        from .push import push as push_mod

        if image is None:
            image = ref
        target = (await self.get_image(image)).target if isinstance(image, str) else image.target
        result = await push_mod(self, ref, target, platform=platform, all_platforms=all_platforms,
                                resolver=resolver, plain_http=plain_http, progress=progress,
                                credentials=credentials)
        return result.target

    async def export_archive(self, out: IO[bytes] | str | os.PathLike[str], *images: str | AsyncImage | Image,
                             platform: str | None = None, all_platforms: bool = False, docker_manifest: bool = True,
                             skip_non_distributable: bool = False, progress: Progress | None = None) -> int:
        """Write ``images`` (names or images) as an OCI layout tar (with docker's
        ``manifest.json``) to ``out`` (a path or binary file); returns bytes written. See
        :mod:`pycontainerd.client.archive`."""
        from .archive import export_archive

        records = [(await self.get_image(i)).record if isinstance(i, str) else _record(i) for i in images]
        if isinstance(out, (str, os.PathLike)):
            with open(out, "wb") as f:
                return await export_archive(self, f, records, platform=platform, all_platforms=all_platforms,
                                            docker_manifest=docker_manifest,
                                            skip_non_distributable=skip_non_distributable, progress=progress)
        return await export_archive(self, out, records, platform=platform, all_platforms=all_platforms,
                                    docker_manifest=docker_manifest, skip_non_distributable=skip_non_distributable,
                                    progress=progress)

    async def import_archive(self, source: IO[bytes] | str | os.PathLike[str], *, base_name: str | None = None,
                             digests: bool = False, index_name: str | None = None, platform: str | None = None,
                             all_platforms: bool = False, unpack: bool = True,
                             snapshotter: str = DEFAULT_SNAPSHOTTER,
                             progress: Progress | None = None) -> list[AsyncImage]:
        """Import an OCI layout tar or a docker archive from ``source`` (a path or binary
        file); returns the images created. See :mod:`pycontainerd.client.archive`."""
        from .archive import import_archive

        kw = dict(base_name=base_name, digests=digests, index_name=index_name, platform=platform,
                  all_platforms=all_platforms, unpack=unpack, snapshotter=snapshotter, progress=progress)
        if isinstance(source, (str, os.PathLike)):
            with open(source, "rb") as f:
                records = await import_archive(self, f, **kw)
        else:
            records = await import_archive(self, source, **kw)
        return [await self.get_image(r.name) for r in records]

    # -- leases -----------------------------------------------------------------------
    @mapped
    async def create_lease(self, lease_id: str = "", labels: Mapping[str, str] | None = None,
                           expire: timedelta | None = timedelta(hours=24)) -> Lease:
        """A lease holding what is created under it from garbage collection; it expires after
        ``expire`` (None: never). An empty ``lease_id`` gets a random one."""
        labels = dict(labels or {})
        if expire is not None:
            when = datetime.now(timezone.utc) + expire
            labels["containerd.io/gc.expire"] = when.strftime("%Y-%m-%dT%H:%M:%SZ")
        if not lease_id:
            lease_id = f"pycontainerd-{time.time_ns()}-{os.urandom(3).hex()}"
        resp = await self._leases.Create(leases_pb2.CreateRequest(id=lease_id, labels=labels), metadata=self.md())
        return lease_records.lease_from_pb(resp.lease)

    @mapped
    async def list_leases(self, *filters: str) -> list[Lease]:
        resp = await self._leases.List(leases_pb2.ListRequest(filters=list(filters)), metadata=self.md())
        return [lease_records.lease_from_pb(x) for x in resp.leases]

    @mapped
    async def delete_lease(self, lease_id: str, sync: bool = False) -> None:
        """Raises ``NotFound``; ``sync`` waits for the garbage collection it triggers."""
        await self._leases.Delete(leases_pb2.DeleteRequest(id=lease_id, sync=sync), metadata=self.md())

    @contextlib.asynccontextmanager
    async def lease(self, expire: timedelta = timedelta(hours=1)) -> AsyncIterator[Lease]:
        """Protect everything created inside the block from garbage collection until it
        ends (containerd's ``client.WithLease``); the lease is deleted on exit. Inside
        another lease's block that lease is used, and stays (as ``WithLease`` does)."""
        from ..records.leases import Lease

        outer = current_lease()
        if outer:
            yield Lease(outer)
            return
        lease = await self.create_lease(f"pycontainerd-{time.time_ns()}-{os.urandom(3).hex()}", expire=expire)
        try:
            with using_lease(lease.id):
                yield lease
        finally:
            await self.delete_lease(lease.id)

    # -- containers: records ----------------------------------------------------------
    @mapped
    async def create_container(self, container: Container) -> Container:
        """Store a container record as given. Raises ``AlreadyExists``, ``InvalidArgument``."""
        req = containers_pb2.CreateContainerRequest(container=container_records.container_to_pb(container))
        return _container((await self._containers.Create(req, metadata=self.md())).container)

    @mapped
    async def get_container(self, cid: str) -> Container:
        """The container record. Raises ``NotFound``."""
        resp = await self._containers.Get(containers_pb2.GetContainerRequest(id=cid), metadata=self.md())
        return _container(resp.container)

    @mapped
    async def list_containers(self, *filters: str) -> list[Container]:
        resp = await self._containers.List(containers_pb2.ListContainersRequest(filters=list(filters)),
                                           metadata=self.md())
        return [_container(c) for c in resp.containers]

    @mapped
    async def update_container(self, container: Container, *paths: str) -> Container:
        """Update fields of the record (``labels``, ``labels.<key>``, ``spec``, ``image``,
        ``snapshotkey``, ``extensions.<key>``; none = all)."""
        req = containers_pb2.UpdateContainerRequest(container=container_records.container_to_pb(container),
                                                    update_mask=field_mask_pb2.FieldMask(paths=list(paths)))
        return _container((await self._containers.Update(req, metadata=self.md())).container)

    @mapped
    async def delete_container(self, cid: str) -> None:
        """Delete the record only (see :meth:`AsyncContainer.delete` for the snapshot too)."""
        await self._containers.Delete(containers_pb2.DeleteContainerRequest(id=cid), metadata=self.md())

    # -- containers: high level -------------------------------------------------------
    async def new_container(self, container_id: str, image: str | AsyncImage | Image | None = None,
                            *spec_opts: oci_opts.SpecOpt, snapshotter: str = DEFAULT_SNAPSHOTTER,
                            labels: Mapping[str, str] | None = None, runtime: str = DEFAULT_RUNTIME,
                            runtime_options: Any = None, spec: Mapping[str, Any] | None = None,
                            image_config: bool = True, readonly: bool = False, unpack: bool = True,
                            platform: str | None = None) -> AsyncContainer:
        """Create a container, as containerd's ``NewContainer(WithNewSnapshot,
        WithNewSpec(oci.WithImageConfig(image), opts...))``:

        1. the image is unpacked into ``snapshotter`` if it is not yet (``unpack``);
        2. its rootfs snapshot is prepared from the image's top chainID, with key = the
           container id (a read-only view with ``readonly``);
        3. the OCI spec is containerd's default with :func:`~pycontainerd.oci.opts.with_image_config`
           (unless ``image_config=False``) and then ``spec_opts`` applied in order — or
           ``spec`` as given. User and group names are looked up in the image's
           ``/etc/passwd``/``/etc/group`` (the snapshot is mounted read-only for that);
        4. the record is stored with the spec as an ``Any`` of type
           ``types.containerd.io/opencontainers/runtime-spec/1/Spec``, the runtime (name and
           options message), labels (plus the image's stop signal).

        Everything happens under a lease; on failure nothing is left behind. Without an image
        there is no snapshot (give ``spec`` with a host ``root.path``).

        Raises ``AlreadyExists`` (id in use), ``NotFound`` (image), ``InvalidArgument`` (bad
        options or id).
        """
        from ..oci import spec as oci_spec
        from ..records.containers import Container, Runtime
        from ..records.images import Image
        from ..typeurl import AnyValue
        from .containers import STOP_SIGNAL_LABEL, AsyncContainer
        from .images import AsyncImage

        ns = self.namespace
        img: AsyncImage | None = None
        if isinstance(image, str):
            img = await self.get_image(image)
        elif isinstance(image, Image):
            img = AsyncImage.of(self, image)
        elif image is not None:
            img = image
        all_labels = dict(labels or {})
        runtime_any = None
        if runtime_options is not None:
            runtime_any = AnyValue(runtime_options.DESCRIPTOR.full_name, runtime_options.SerializeToString())
        snaps = self.snapshotter(snapshotter)
        async with self.lease():
            cfg_doc = None
            mounts = []
            if img is not None:
                cfg_doc = await img.config(platform)
                if unpack and not await img.is_unpacked(snapshotter, platform):
                    await img.unpack(snapshotter, platform)
                parent = await img.chain_id(platform)
                stop = (cfg_doc.get("config") or {}).get("StopSignal")
                all_labels.setdefault(STOP_SIGNAL_LABEL, stop or "SIGTERM")
                try:
                    await self.get_container(container_id)
                except NotFound:
                    pass
                else:
                    raise AlreadyExists(f"container \"{container_id}\"")
                if readonly:
                    mounts = await snaps.view(container_id, parent)
                else:
                    mounts = await snaps.prepare(container_id, parent)
            try:
                if spec is not None:
                    final = dict(spec)
                else:
                    from ..oci import opts as oci_opts  # spec building: only for new containers

                    opts = ([oci_opts.with_image_config(cfg_doc)] if cfg_doc is not None and image_config else [])
                    opts += list(spec_opts)
                    final = await _generate_spec(ns, container_id, opts, cfg_doc, mounts)
                record = Container(container_id, Runtime(runtime, runtime_any), oci_spec.to_any(final),
                                   image=img.name if img is not None else "", labels=all_labels,
                                   snapshotter=snapshotter if img is not None else "",
                                   snapshot_key=container_id if img is not None else "")
                await self.create_container(record)
            except BaseException:
                if img is not None:
                    with contextlib.suppress(Exception):
                        await snaps.remove(container_id)
                raise
        return AsyncContainer(self, container_id)

    async def load_container(self, container_id: str) -> AsyncContainer:
        """An existing container. Raises ``NotFound``."""
        from .containers import AsyncContainer

        await self.get_container(container_id)
        return AsyncContainer(self, container_id)

    async def containers(self, *filters: str) -> list[AsyncContainer]:
        """Every container matching any filter (``labels."k"==v``, ``image==…``)."""
        from .containers import AsyncContainer

        return [AsyncContainer(self, c.id) for c in await self.list_containers(*filters)]

    # -- tasks ------------------------------------------------------------------------
    @mapped
    async def list_tasks(self, filter: str = "") -> list[ProcessStatus]:
        """Every task of the namespace (its init process's state)."""
        from .tasks import _status

        resp = await self._tasks.List(tasks_pb2.ListTasksRequest(filter=filter), metadata=self.md())
        return [_status(t.container_id or t.id, t) for t in resp.tasks]

    @mapped
    async def task_metrics(self, *filters: str) -> list[TaskMetrics]:
        """cgroup statistics of every task matching any filter (``id==web``)."""
        from .tasks import TaskMetrics, decode_any

        resp = await self._tasks.Metrics(tasks_pb2.MetricsRequest(filters=list(filters)), metadata=self.md())
        return [TaskMetrics(m.id, m.timestamp.ToNanoseconds(), decode_any(m.data)) for m in resp.metrics]

    # -- events -----------------------------------------------------------------------
    async def subscribe(self, *filters: str) -> AsyncIterator[Envelope]:
        """Events from now on matching any filter (``topic=="/tasks/exit"``,
        ``namespace==default``, ``event.container_id==web``), as envelopes (``timestamp_ns``,
        ``namespace``, ``topic``, ``event``) whose ``event`` is the decoded protobuf message
        (``containerd.events.TaskExit`` …), or an :class:`AnyValue` for an unknown type.

        Subscribes to every namespace (filter on ``namespace`` to narrow it), as containerd's
        Events service does."""
        from ..api.events import container_pb2 as _container_events  # noqa: F401  (event types for decoding)
        from ..api.events import content_pb2 as _content_events  # noqa: F401
        from ..api.events import image_pb2 as _image_events  # noqa: F401
        from ..api.events import namespace_pb2 as _namespace_events  # noqa: F401
        from ..api.events import snapshot_pb2 as _snapshot_events  # noqa: F401
        from ..api.events import task_pb2 as _task_events  # noqa: F401
        from ..events.exchange import Envelope
        from ..events.filtering import decode
        from ..typeurl import AnyValue

        call = self._events.Subscribe(events_pb2.SubscribeRequest(filters=list(filters)), metadata=self.md())
        try:
            async for env in mapped_stream(call, self.conn):
                raw = AnyValue(env.event.type_url, env.event.value)
                yield Envelope(env.timestamp.ToNanoseconds(), env.namespace, env.topic, decode(raw) or raw)
        finally:
            call.cancel()


async def _generate_spec(namespace: str, container_id: str, opts: list, image_config: dict | None,
                         mounts: list) -> dict[str, Any]:
    """The spec, with the container's rootfs mounted read-only while options run (for
    ``/etc/passwd`` and ``/etc/group`` lookups, as containerd's ``WithTempMount``) when
    options need it and this process can mount it; else an empty directory stands in."""
    import asyncio
    import tempfile

    from ..mount import Mount, mount_all, unmount_all
    from ..oci import opts as oci_opts

    if not mounts:
        return oci_opts.generate(namespace, container_id, *opts, image_config=image_config)
    try:
        return oci_opts.generate(namespace, container_id, *opts, image_config=image_config)
    except InvalidArgument as exc:
        if "rootfs" not in str(exc):
            raise
    target = tempfile.mkdtemp(prefix="pycontainerd-spec-")
    try:
        ro = [Mount(m.type, m.source, tuple(m.options) + ("ro",), m.target) for m in mounts]
        try:
            await asyncio.to_thread(mount_all, ro, target)
        except (OSError, InvalidArgument):
            # not root, or the daemon is on another host: an empty rootfs (numeric users
            # work; a user name gives a clear "unable to find user" error)
            return oci_opts.generate(namespace, container_id, *opts, image_config=image_config, rootfs=target)
        try:
            return oci_opts.generate(namespace, container_id, *opts, image_config=image_config, rootfs=target)
        finally:
            await asyncio.to_thread(unmount_all, target)
    finally:
        with contextlib.suppress(OSError):
            os.rmdir(target)


def default_fifo_dir() -> str:
    from . import cio

    return cio.DEFAULT_FIFO_DIR
