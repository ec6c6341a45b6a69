"""The CRI service core: shared state of every CRI call (stores, the containerd backend,
CNI, paths, events) and the parts that run in the background (exit monitors, recovery).

The RPCs themselves are one module each under :mod:`pycontainerd.cri.server`; each is a
function ``async def <rpc>(c: CRIService, request) -> response`` on the CRI protobuf
messages, raising :mod:`pycontainerd.errdefs` errors. :mod:`pycontainerd.cri.servicer`
serves them over gRPC.

Start-up is lazy: the daemon builds this object before it serves its socket, so nothing
here talks to the daemon until :meth:`CRIService.ensure_started` runs — on the first CRI
call, or right after start-up when the metadata holds CRI objects of a previous run, which
:meth:`recover` then rebuilds (sandboxes and containers with their state, IPs, log paths;
exit monitors and log copying resume for those still running).

On-disk layout (``<root>`` and ``<state>`` are the plugin's directories)::

    <root>/sandboxes/<id>/{status.json,hostname,hosts,resolv.conf}
    <root>/containers/<id>/status.json
    <root>/cni/results/<network>-<sandbox id>-<ifname>       CNI ADD results (for DEL)
    <state>/sandboxes/<id>/shm                                the pod's /dev/shm (tmpfs)
    <state>/containers/<id>/io/{stdout,stderr}                fifos the shim writes to
    <state>/containers/<id>/exec/<exec id>-{stdout,stderr}    ExecSync fifos
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Sequence

from google.protobuf import any_pb2

from ..api.cgroups.v1 import metrics_pb2 as cg1
from ..api.cgroups.v2 import metrics_pb2 as cg2
from ..api.cri.runtime.v1 import api_pb2 as cri
from ..errdefs import ContainerdError, InvalidArgument, NotFound, quote
from ..log import get_logger
from ..mount import Mount, mount_all, unmount_all
from ..remotes.reference import parse_normalized
from . import image_volume
from .backend import Backend, ResolvedImage, image_record
from .cni import CNI
from .config import CRIConfig
from .logs import ContainerIO
from .spec import DEV_SHM, ETC_HOSTNAME, ETC_HOSTS, RESOLV_CONF
from .state import ContainerState, SandboxState
from .store import (
    CONTAINER_METADATA_EXT,
    KIND_CONTAINER,
    KIND_LABEL,
    KIND_SANDBOX,
    SANDBOX_METADATA_EXT,
    Container,
    Sandbox,
    Store,
    read_json,
    write_json_atomic,
)
from .util import can_lower_oom_score_adj, clamp_oom_score_adj, now_ns

log = get_logger("cri")

EXIT_CODE_UNKNOWN = 255
START_ERROR_EXIT_CODE = 128
IO_DRAIN_TIMEOUT = 5.0


class EventBroadcaster:
    """``GetContainerEvents`` subscribers: each gets every event published after it
    subscribed; :meth:`close` ends every stream."""

    def __init__(self) -> None:
        self._subs: set[asyncio.Queue] = set()
        self.closed = False

    def publish(self, event: cri.ContainerEventResponse) -> None:
        for q in list(self._subs):
            with contextlib.suppress(asyncio.QueueFull):
                q.put_nowait(event)

    async def subscribe(self) -> AsyncIterator[cri.ContainerEventResponse]:
        q: asyncio.Queue = asyncio.Queue(maxsize=10000)
        self._subs.add(q)
        try:
            while not self.closed:
                item = await q.get()
                if item is None:
                    return
                yield item
        finally:
            self._subs.discard(q)

    def close(self) -> None:
        self.closed = True
        for q in list(self._subs):
            with contextlib.suppress(asyncio.QueueFull):
                q.put_nowait(None)


def readonly_view(mounts: Sequence[Mount]) -> list[Mount]:
    """Read-only mounts of a freshly prepared snapshot's content, for reading the image's
    ``/etc/passwd``: its lower layers only (the upper directory is empty and its work
    directory must not be shared), a read-only bind of a single directory."""
    out = []
    for m in mounts:
        if m.type == "overlay":
            lower = next((opt.split("=", 1)[1] for opt in m.options if opt.startswith("lowerdir=")), "")
            dirs = [d for d in lower.split(":") if d]
            if len(dirs) == 1:
                out.append(Mount("bind", dirs[0], ("rbind", "ro")))
            elif dirs:
                out.append(Mount("overlay", "overlay", (f"lowerdir={':'.join(dirs)}",)))
            else:  # an overlay with no lower layers: its upper dir is the content
                upper = next((opt.split("=", 1)[1] for opt in m.options if opt.startswith("upperdir=")), "")
                out.append(Mount("bind", upper, ("rbind", "ro")))
        else:
            out.append(Mount(m.type, m.source, tuple(x for x in m.options if x not in ("rw",)) + ("ro",)))
    return out


class CRIService:
    """Everything the CRI calls share (see the module doc).

    Args:
        config: the plugin configuration.
        address: the daemon's gRPC socket (the backend connects to it lazily).
        root, state: the plugin's persistent and runtime directories.
        snapshotter_root: the snapshotter's directory (ImageFsInfo, stats).
    """

    def __init__(self, config: CRIConfig, *, address: str, root: str, state: str, snapshotter_root: str = "") -> None:
        self.config = config
        self.root = root
        self.state = state
        self.snapshotter_root = snapshotter_root
        self.backend = Backend(address, config.containerd.snapshotter)
        self.cni = CNI(config.cni.bin_dirs(), config.cni.conf_dir, config.cni.max_conf_num,
                       os.path.join(root, "cni"))
        self.sandboxes: Store[Sandbox] = Store("sandbox")
        self.containers: Store[Container] = Store("container")
        self.events = EventBroadcaster()
        self.restrict_oom = config.restrict_oom_score_adj or not can_lower_oom_score_adj()
        self.pod_cidr = ""
        self._started: asyncio.Future | None = None
        self._start_lock = asyncio.Lock()
        self._background: set[asyncio.Task] = set()
        self._closing = False
        self.pull_locks: dict[str, asyncio.Lock] = {}           # one pull per reference at a time
        self.cpu_samples: dict[str, tuple[int, int]] = {}     # stats: previous (time, cpu ns)
        self.fs_usage_cache: dict[str, tuple[float, int, int, int]] = {}

    # -- life --------------------------------------------------------------------------

    async def ensure_started(self) -> None:
        """Connect to the daemon and recover the previous run's objects, once."""
        if self._started is not None and self._started.done():
            self._started.result()
            return
        async with self._start_lock:
            if self._started is None or (self._started.done() and self._started.exception() is not None):
                self._started = asyncio.get_running_loop().create_future()
                try:
                    await self.backend.client()
                    await self.recover()
                except BaseException as exc:
                    self._started.set_exception(exc)
                    self._started.exception()  # retrieved: a later call retries
                    raise
                self._started.set_result(None)
        self._started.result()

    def spawn(self, coro) -> asyncio.Task:
        """Run ``coro`` in the background (cancelled by :meth:`shutdown`), outside the
        context of the call that started it (its log fields stay with that call)."""
        t = asyncio.get_running_loop().create_task(coro, context=contextvars.Context())
        self._background.add(t)
        t.add_done_callback(self._background.discard)
        return t

    def shutdown(self) -> None:
        """Stop background work now (the daemon is stopping): end event streams, cancel
        exit monitors and log copying. Containers keep running."""
        self._closing = True
        self.events.close()
        for t in list(self._background):
            t.cancel()

    async def close(self) -> None:
        self.shutdown()
        for t in list(self._background):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        for c in self.containers:
            if c.io is not None:
                await c.io.close()
                c.io = None
        await self.backend.close()

    # -- paths -------------------------------------------------------------------------

    def sandbox_root(self, sid: str) -> str:
        return os.path.join(self.root, "sandboxes", sid)

    def sandbox_state(self, sid: str) -> str:
        return os.path.join(self.state, "sandboxes", sid)

    def container_root(self, cid: str) -> str:
        return os.path.join(self.root, "containers", cid)

    def container_state(self, cid: str) -> str:
        return os.path.join(self.state, "containers", cid)

    def sandbox_files(self, sb: Sandbox) -> dict[str, str]:
        d = self.sandbox_root(sb.id)
        return {ETC_HOSTNAME: os.path.join(d, "hostname"), ETC_HOSTS: os.path.join(d, "hosts"),
                RESOLV_CONF: os.path.join(d, "resolv.conf"), DEV_SHM: self.shm_path(sb)}

    def shm_path(self, sb: Sandbox) -> str:
        if sb.namespace_options.ipc == cri.NODE:
            return DEV_SHM
        return os.path.join(self.sandbox_state(sb.id), "shm")

    def oom_score_adj(self, score: int) -> int:
        return clamp_oom_score_adj(score, self.restrict_oom)

    # -- persistence -------------------------------------------------------------------

    def save(self, obj: Sandbox | Container) -> None:
        d = self.sandbox_root(obj.id) if isinstance(obj, Sandbox) else self.container_root(obj.id)
        write_json_atomic(os.path.join(d, "status.json"), obj.status())

    # -- events ------------------------------------------------------------------------

    def publish(self, event_type: int, obj: Sandbox | Container) -> None:
        """A ``ContainerEventResponse`` for ``obj`` (a sandbox is reported under its own id)."""
        from .server.container_status import container_status_pb
        from .server.sandbox_status import sandbox_status_pb

        sb = obj if isinstance(obj, Sandbox) else self.sandboxes.find(obj.sandbox_id)
        ev = cri.ContainerEventResponse(container_id=obj.id, container_event_type=event_type, created_at=now_ns())
        if sb is not None:
            ev.pod_sandbox_status.CopyFrom(sandbox_status_pb(sb))
            for c in self.containers.list(lambda x: x.sandbox_id == sb.id):
                ev.containers_statuses.append(container_status_pb(self, c))
        self.events.publish(ev)

    # -- images ------------------------------------------------------------------------

    async def cri_images(self) -> dict[str, tuple[ResolvedImage, list[str]]]:
        """Every image of namespace ``k8s.io`` that this host can run, by image id
        (``sha256:<config digest>``) with all the names that point at it."""
        out: dict[str, tuple[ResolvedImage, list[str]]] = {}
        for record in await self.backend.list_images():
            try:
                resolved = await self.backend.resolve_image(record)
            except (NotFound, InvalidArgument):
                continue
            entry = out.get(resolved.id)
            if entry is None:
                out[resolved.id] = (resolved, [record.name])
            else:
                entry[1].append(record.name)
        return out

    async def local_image(self, ref_or_id: str) -> tuple[ResolvedImage, list[str]] | None:
        """The image ``ref_or_id`` names: an image id, a reference (normalised), or a unique
        prefix of an id (containerd's ``localResolve``); None when there is none."""
        if not ref_or_id:
            raise InvalidArgument("image name is required")
        images = await self.cri_images()
        if ref_or_id in images:
            return images[ref_or_id]
        try:
            name = str(parse_normalized(ref_or_id))
        except InvalidArgument:
            name = ""
        if name:
            for resolved, names in images.values():
                if name in names:
                    return resolved, names
        prefix = ref_or_id if ref_or_id.startswith("sha256:") else f"sha256:{ref_or_id}"
        hits = [v for k, v in images.items() if k.startswith(prefix)]
        if len(hits) == 1 and len(ref_or_id.removeprefix("sha256:")) >= 1:
            return hits[0]
        return None

    @staticmethod
    def split_references(names: Sequence[str]) -> tuple[list[str], list[str]]:
        """``(repo tags, repo digests)`` among an image's names (ids are neither)."""
        tags, digests = [], []
        for n in names:
            if n.startswith("sha256:"):
                continue
            try:
                ref = parse_normalized(n)
            except InvalidArgument:
                continue
            (digests if ref.digest else tags).append(str(ref))
        return sorted(set(tags)), sorted(set(digests))

    async def pull(self, ref: str, auth: cri.AuthConfig | None = None) -> ResolvedImage:
        """Pull ``ref`` as the CRI does and record it under its reference, its repo digest
        and its id, labelled ``io.cri-containerd.image=managed``."""
        import httpx

        from ..remotes.resolver import Resolver
        from .registry import parse_auth, pull_settings

        normalized = parse_normalized(ref)
        name = str(normalized)
        settings = pull_settings(self.config.registry.config_path, name)
        lock = self.pull_locks.setdefault(name, asyncio.Lock())
        async with lock:
            client = httpx.AsyncClient(verify=settings.verify(), timeout=httpx.Timeout(60.0, connect=10.0),
                                       follow_redirects=False)
            try:
                resolver = Resolver(client=client, hosts=settings.hosts_func(),
                                    credentials=lambda host: parse_auth(auth, host))
                record = await self.backend.pull(name, resolver)
            finally:
                await client.aclose()
            resolved = await self.backend.resolve_image(record)
            repo_digest = f"{normalized.name}@{record.target.digest}"
            for n in dict.fromkeys([name, repo_digest, resolved.id]):
                await self.backend.put_image(image_record(n, record.target))
        return resolved

    async def ensure_image(self, ref: str) -> tuple[ResolvedImage, list[str]]:
        """The local image ``ref``, pulled first when it is not here (the sandbox image)."""
        found = await self.local_image(ref)
        if found is not None:
            return found
        await self.pull(ref)
        found = await self.local_image(ref)
        if found is None:
            raise NotFound(f"image {quote(ref)} not found after pull")
        return found

    async def ensure_unpacked(self, image: ResolvedImage) -> None:
        if image.chain_id and not await self.backend.snapshot_exists(image.chain_id):
            await self.backend.unpack(image.record.name)

    # -- spec --------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def rootfs_view(self, mounts: Sequence[Mount]) -> AsyncIterator[str | None]:
        """The snapshot mounted read-only in a temp dir while a spec is generated (user
        and group lookups); yields None when there is nothing to mount."""
        if not mounts:
            yield None
            return
        tmp_root = os.path.join(self.state, "tmpmounts")
        os.makedirs(tmp_root, exist_ok=True)
        target = tempfile.mkdtemp(prefix="rootfs-", dir=tmp_root)
        try:
            await asyncio.to_thread(mount_all, readonly_view(mounts), target)
            try:
                yield target
            finally:
                await asyncio.to_thread(unmount_all, target)
        finally:
            with contextlib.suppress(OSError):
                os.rmdir(target)

    # -- exits -------------------------------------------------------------------------

    def watch_sandbox(self, sb: Sandbox) -> None:
        sb.exited.clear()
        sb.monitor = self.spawn(self._wait_sandbox(sb))

    def watch_container(self, c: Container) -> None:
        c.exited.clear()
        c.monitor = self.spawn(self._wait_container(c))

    async def _wait(self, obj_id: str) -> tuple[int, int] | None:
        try:
            return await self.backend.wait(obj_id)
        except NotFound:
            return EXIT_CODE_UNKNOWN, now_ns()
        except ContainerdError as exc:
            if self._closing:
                return None
            log.warning("waiting for task failed", id=obj_id, error=str(exc))
            try:
                st = await self.backend.task_state(obj_id)
            except NotFound:
                return EXIT_CODE_UNKNOWN, now_ns()
            except ContainerdError:
                return None
            if st.status == "stopped":
                return st.exit_status, st.exited_at_ns
            return None

    async def _wait_sandbox(self, sb: Sandbox) -> None:
        result = await self._wait(sb.id)
        if result is not None:
            await self.handle_sandbox_exit(sb, *result)

    async def _wait_container(self, c: Container) -> None:
        result = await self._wait(c.id)
        if result is not None:
            await self.handle_container_exit(c, *result)

    async def _oom_killed(self, cid: str) -> bool:
        try:
            data = (await self.backend.metrics([cid])).get(cid)
        except ContainerdError:
            return False
        return oom_kill_count(data) > 0

    async def handle_container_exit(self, c: Container, exit_status: int, exited_at: int) -> None:
        """The container's process ended: reap the task, finish the log, record EXITED with
        reason Completed, Error or OOMKilled."""
        if c.state not in (ContainerState.RUNNING, ContainerState.UNKNOWN) or c.exiting:
            if c.state is ContainerState.EXITED:
                c.exited.set()
            return
        c.exiting = True
        try:
            await self._finish_container(c, exit_status, exited_at)
        finally:
            c.exiting = False

    async def _finish_container(self, c: Container, exit_status: int, exited_at: int) -> None:
        oom = await self._oom_killed(c.id)
        with contextlib.suppress(ContainerdError):
            await self.backend.delete_task(c.id)
        if c.io is not None:
            await c.io.wait(IO_DRAIN_TIMEOUT)
            await c.io.close()
            c.io = None
        c.pid = 0
        c.finished_at = exited_at or now_ns()
        c.exit_code = exit_status
        c.reason = "OOMKilled" if oom else ("Completed" if exit_status == 0 else "Error")
        c.set_state(ContainerState.EXITED)
        with contextlib.suppress(OSError):
            self.save(c)
        c.exited.set()
        self.publish(cri.CONTAINER_STOPPED_EVENT, c)
        log.info("container exited", id=c.id, exit_code=exit_status, reason=c.reason)

    async def handle_sandbox_exit(self, sb: Sandbox, exit_status: int, exited_at: int) -> None:
        """The pause process ended (killed by StopPodSandbox, or died): NOTREADY."""
        with contextlib.suppress(ContainerdError):
            await self.backend.delete_task(sb.id)
        sb.pid = 0
        sb.exit_status, sb.exited_at = exit_status, exited_at or now_ns()
        if sb.state in (SandboxState.INIT, SandboxState.READY, SandboxState.UNKNOWN):
            sb.set_state(SandboxState.NOTREADY)
            with contextlib.suppress(OSError):
                self.save(sb)
            self.publish(cri.CONTAINER_STOPPED_EVENT, sb)
        sb.exited.set()

    # -- recovery ----------------------------------------------------------------------

    async def recover(self) -> None:
        """Rebuild the stores from the ``k8s.io`` container records and status files."""
        records = await self.backend.list_containers(f'labels."{KIND_LABEL}"')
        for rec in records:
            kind = rec.labels.get(KIND_LABEL)
            try:
                if kind == KIND_SANDBOX:
                    await self._recover_sandbox(rec)
            except Exception as exc:  # one broken record must not hide the others
                log.error("cannot recover sandbox", id=rec.id, error=str(exc))
        for rec in records:
            kind = rec.labels.get(KIND_LABEL)
            try:
                if kind == KIND_CONTAINER:
                    await self._recover_container(rec)
            except Exception as exc:
                log.error("cannot recover container", id=rec.id, error=str(exc))
        self._cleanup_orphan_dirs()
        if records:
            log.info("cri recovered", sandboxes=len(self.sandboxes), containers=len(self.containers))

    async def _recover_sandbox(self, rec) -> None:
        ext = rec.extensions.get(SANDBOX_METADATA_EXT)
        if ext is None or self.sandboxes.find(rec.id) is not None:
            return
        sb = Sandbox.from_metadata(json.loads(ext.value), read_json(os.path.join(self.sandbox_root(rec.id),
                                                                               "status.json")))
        if rec.spec is not None:
            with contextlib.suppress(ValueError):
                sb.spec = json.loads(rec.spec.value)
        try:
            st = await self.backend.task_state(sb.id)
        except NotFound:
            st = None
        except ContainerdError:
            st = None
            sb.state = SandboxState.UNKNOWN
        if st is not None and st.status in ("running", "paused", "pausing"):
            sb.state = SandboxState.READY
            sb.pid = st.pid
            self.watch_sandbox(sb)
        elif sb.state is not SandboxState.UNKNOWN:
            if st is not None:
                with contextlib.suppress(ContainerdError):
                    if st.status == "created":
                        await self.backend.kill(sb.id, 9)
                    await self.backend.delete_task(sb.id)
            sb.state = SandboxState.NOTREADY
            sb.pid = 0
            sb.exited.set()
        self.sandboxes.add(sb)
        self.sandboxes.names.reserve("sandbox", sb.name, sb.id)
        with contextlib.suppress(OSError):
            self.save(sb)

    async def _recover_container(self, rec) -> None:
        ext = rec.extensions.get(CONTAINER_METADATA_EXT)
        if ext is None or self.containers.find(rec.id) is not None:
            return
        c = Container.from_metadata(json.loads(ext.value), read_json(os.path.join(self.container_root(rec.id),
                                                                                "status.json")))
        if rec.spec is not None:
            with contextlib.suppress(ValueError):
                c.spec = json.loads(rec.spec.value)
        was_running = c.state in (ContainerState.RUNNING, ContainerState.UNKNOWN)
        st = None
        unreachable = False
        try:
            st = await self.backend.task_state(c.id)
        except NotFound:
            pass
        except ContainerdError:
            unreachable = True
        self.containers.add(c)
        self.containers.names.reserve("container", c.name, c.id)
        if unreachable:
            if was_running:
                c.state = ContainerState.UNKNOWN          # its shim does not answer
        elif st is not None and st.status in ("running", "paused", "pausing"):
            c.state = ContainerState.RUNNING
            c.pid = st.pid
            if c.stdout_path:
                io = ContainerIO(os.path.dirname(c.stdout_path), tty=c.config.tty, log_path=c.log_path,
                                 max_line=self.config.max_container_log_line_size)
                try:
                    io.start()
                    c.io = io
                except OSError as exc:
                    log.warning("cannot reattach container output", id=c.id, error=str(exc))
            self.watch_container(c)
        elif st is not None and st.status == "stopped" and was_running:
            await self.handle_container_exit(c, st.exit_status, st.exited_at_ns)   # exited while we were away
            return
        else:
            if st is not None:          # created but never started, or stopped and handled
                with contextlib.suppress(ContainerdError):
                    if st.status == "created":
                        await self.backend.kill(c.id, 9)
                    await self.backend.delete_task(c.id)
            if was_running:             # the task is gone with its shim: exited, code unknown
                c.state = ContainerState.EXITED
                c.exit_code = EXIT_CODE_UNKNOWN
                c.reason = "Unknown"
                c.finished_at = c.finished_at or now_ns()
                c.pid = 0
            if c.state is ContainerState.EXITED:
                c.exited.set()
        with contextlib.suppress(OSError):
            self.save(c)

    def _cleanup_orphan_dirs(self) -> None:
        """Directories of objects no record knows (a crash mid-create)."""
        for kind, store, dirs in (("sandboxes", self.sandboxes, (self.root, self.state)),
                                  ("containers", self.containers, (self.root, self.state))):
            for base in dirs:
                d = os.path.join(base, kind)
                try:
                    names = os.listdir(d)
                except FileNotFoundError:
                    continue
                for n in names:
                    if store.find(n) is None and len(n) == 64:
                        path = os.path.join(d, n)
                        shm = os.path.join(path, "shm")
                        with contextlib.suppress(OSError):
                            unmount_all(shm)
                        image_volume.unmount_orphan(path)
                        shutil.rmtree(path, ignore_errors=True)


def oom_kill_count(data: any_pb2.Any | None) -> int:
    """OOM kills recorded in a task's cgroup metrics (v1 ``memory.oom_control``, v2
    ``memory.events``)."""
    if data is None or not data.value:
        return 0
    name = data.type_url.rsplit("/", 1)[-1]
    try:
        if name == "io.containerd.cgroups.v1.Metrics":
            return cg1.Metrics.FromString(data.value).memory_oom_control.oom_kill
        if name == "io.containerd.cgroups.v2.Metrics":
            return cg2.Metrics.FromString(data.value).memory_events.oom_kill
    except Exception:  # noqa: BLE001 - malformed metrics: no OOM known
        return 0
    return 0


def decode_metrics(data: any_pb2.Any | None) -> dict[str, int]:
    """cpu/memory figures of a task's metrics in the CRI's terms: ``cpu_ns``,
    ``memory_usage``, ``working_set``, ``rss``, ``page_faults``, ``major_page_faults``,
    ``memory_limit``, ``pids`` (absent keys: not known)."""
    if data is None or not data.value:
        return {}
    name = data.type_url.rsplit("/", 1)[-1]
    out: dict[str, int] = {}
    if name == "io.containerd.cgroups.v1.Metrics":
        m = cg1.Metrics.FromString(data.value)
        out["cpu_ns"] = m.cpu.usage.total
        usage = m.memory.usage.usage
        inactive = m.memory.total_inactive_file
        out["memory_usage"] = usage
        out["working_set"] = max(usage - inactive, 0)
        out["rss"] = m.memory.total_rss or m.memory.rss
        out["page_faults"] = m.memory.total_pg_fault or m.memory.pg_fault
        out["major_page_faults"] = m.memory.total_pg_maj_fault or m.memory.pg_maj_fault
        limit = m.memory.usage.limit
        if limit and limit < (1 << 62):
            out["memory_limit"] = limit
        out["pids"] = m.pids.current
    elif name == "io.containerd.cgroups.v2.Metrics":
        m2 = cg2.Metrics.FromString(data.value)
        out["cpu_ns"] = m2.cpu.usage_usec * 1000
        out["memory_usage"] = m2.memory.usage
        out["working_set"] = max(m2.memory.usage - m2.memory.inactive_file, 0)
        out["rss"] = m2.memory.anon
        out["page_faults"] = m2.memory.pgfault
        out["major_page_faults"] = m2.memory.pgmajfault
        if m2.memory.usage_limit and m2.memory.usage_limit < (1 << 62):
            out["memory_limit"] = m2.memory.usage_limit
        out["pids"] = m2.pids.current
    return out


__all__ = ["CRIService", "EventBroadcaster", "decode_metrics", "oom_kill_count", "readonly_view"]
