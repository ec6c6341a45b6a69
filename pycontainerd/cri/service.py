"""The CRI core: what every CRI call shares (the daemon's services through
:class:`~pycontainerd.cri.daemon.Daemon`, the sandbox and container stores, images, CNI,
paths, CRI events), with no gRPC in it.

The calls themselves are one module each under :mod:`pycontainerd.cri.handlers`; each is a
function ``async def <rpc>(svc: CRIService, request) -> response`` on the CRI protobuf
messages, raising :mod:`pycontainerd.errdefs` errors. :mod:`pycontainerd.cri.servicer` is
the thin gRPC layer over them. Images are :mod:`.images`, task exits :mod:`.exits`, the
rebuild after a restart :mod:`.recovery`; :meth:`CRIService.start` (at plugin init)
subscribes to task exits and starts recovery, once; CRI calls wait for it.

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
import os
import tempfile
from collections.abc import AsyncIterator, Sequence

from ..api.cri.runtime.v1 import api_pb2 as cri
from ..log import get_logger
from ..mount import Mount, mount_all, unmount_all
from .cni import CNI
from .config import CRIConfig
from .convert import container_status_pb, sandbox_status_pb
from .daemon import Daemon, Services
from .exits import ExitMonitor
from .images import Images
from .recovery import recover
from .store import Container, Sandbox, Store, write_json_atomic
from .util import (DEV_SHM, ETC_HOSTNAME, ETC_HOSTS, RESOLV_CONF, can_lower_oom_score_adj, clamp_oom_score_adj,
                   now_ns)

log = get_logger("cri")

START_ERROR_EXIT_CODE = 128


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
        services: the daemon's in-process services.
        root, state: the plugin's persistent and runtime directories.
        snapshotter_root: the snapshotter's directory (ImageFsInfo, stats).
    """

    def __init__(self, config: CRIConfig, services: Services, *, root: str, state: str,
                 snapshotter_root: str = "") -> None:
        self.config = config
        self.root = root
        self.state = state
        self.snapshotter_root = snapshotter_root
        self.daemon = Daemon(services, config.containerd.snapshotter)
        self.images = Images(self.daemon, config)
        self.exits = ExitMonitor(self)
        self.cni = CNI(config.cni.bin_dirs(), config.cni.conf_dir, config.cni.max_conf_num,
                       os.path.join(root, "cni"))
        self.sandboxes: Store[Sandbox] = Store("sandbox")
        self.containers: Store[Container] = Store("container")
        self.events = EventBroadcaster()
        self.restrict_oom = config.restrict_oom_score_adj or not can_lower_oom_score_adj()
        self.pod_cidr = ""
        self._background: set[asyncio.Task] = set()
        self._recovery: asyncio.Task | None = None
        self.cpu_samples: dict[str, tuple[int, int]] = {}     # stats: previous (time, cpu ns)
        self.fs_usage_cache: dict[str, tuple[float, int, int, int]] = {}

    # -- life --------------------------------------------------------------------------

    def start(self) -> None:
        """At plugin init, once: subscribe to task exits, and rebuild the previous run's
        sandboxes and containers in the background (the daemon serves meanwhile; an exit in
        between is queued, not lost). CRI calls wait for it: :meth:`recovered`."""
        self.exits.subscribe()
        self.spawn(self.exits.run())
        self._recovery = self.spawn(self._recover())

    async def _recover(self) -> None:
        try:
            await recover(self, self.exits)
        except Exception as exc:
            log.error("cri recovery failed", error=str(exc))
            raise

    async def recovered(self) -> None:
        """Return once recovery is done; raise its error if it failed."""
        task = self._recovery
        assert task is not None, "start() runs at plugin init"
        if not task.done():
            await asyncio.shield(task)
        task.result()

    def spawn(self, coro) -> asyncio.Task:
        """Run ``coro`` in the background (cancelled by :meth:`shutdown`), outside the
        context of the call that started it (its log fields stay with that call)."""
        t = asyncio.get_running_loop().create_task(coro, context=contextvars.Context())
        self._background.add(t)
        t.add_done_callback(self._background.discard)
        return t

    def shutdown(self) -> None:
        """Stop background work now (the daemon is stopping): end event streams, cancel
        exit handling and log copying. Containers keep running."""
        self.events.close()
        self.exits.close()
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
        sb = obj if isinstance(obj, Sandbox) else self.sandboxes.find(obj.sandbox_id)
        ev = cri.ContainerEventResponse(container_id=obj.id, container_event_type=event_type, created_at=now_ns())
        if sb is not None:
            ev.pod_sandbox_status.CopyFrom(sandbox_status_pb(sb))
            for c in self.containers.list(lambda x: x.sandbox_id == sb.id):
                ev.containers_statuses.append(container_status_pb(c))
        self.events.publish(ev)

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


__all__ = ["CRIService", "EventBroadcaster", "START_ERROR_EXIT_CODE", "readonly_view"]
