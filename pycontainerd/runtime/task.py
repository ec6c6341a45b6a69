"""Tasks: the daemon's handle on a running container, one shim each (no gRPC here).

:class:`TaskManager` creates tasks (bundle → shim ``start`` → ``Create``), finds them, deletes
them, and after a daemon restart reconnects to every shim recorded under ``--state``
(:meth:`TaskManager.load_existing`). :class:`ShimTask` wraps the shim's
``containerd.task.v2.Task`` calls with typed results. Errors are
:mod:`pycontainerd.errdefs` classes, as the shim reported them (``NotFound``,
``FailedPrecondition``, …); a shim that is gone is :class:`~pycontainerd.errdefs.Unavailable`.

A shim that disconnects unexpectedly (it was killed) is cleaned up in the background:
``<shim> delete`` (runc delete --force, unmount), then ``/tasks/exit`` (exit status from the
shim's delete, 255 if that failed) and ``/tasks/delete`` are published on ``events`` and
the bundle is removed — containerd's ``cleanupAfterDeadShim``.

Example::

    tm = TaskManager(state="/run/pycontainerd", address="/run/pycontainerd/pycontainerd.sock",
                     events=exchange)
    task = await tm.create("default", "web", spec_json, mounts, stdin="", stdout=out_fifo,
                           stderr=err_fifo, terminal=False, runtime_options=None)
    await task.start()
    exit = await task.wait()
    await tm.delete_task("default", "web")
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from google.protobuf import any_pb2, empty_pb2
from google.protobuf.message import Message

from .. import identifiers
from ..api.events import task_pb2 as events
from ..api.runtime.runc.options import oci_pb2 as runc_options
from ..api.runtime.task.v2 import shim_pb2 as api
from ..api.types.task import task_pb2 as types
from ..errdefs import AlreadyExists, ContainerdError, NotFound, Unavailable, quote, wrap
from ..log import enabled, get_logger
from ..wire.convert import mount_to_pb
from .bundle import Bundle, empty_trash, remove_paths
from .shim_manager import Shim, ShimManager

PROCESS_SPEC_URL = "types.containerd.io/opencontainers/runtime-spec/1/Process"
RESOURCES_URL = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources"

TASK_EXIT = "/tasks/exit"
TASK_DELETE = "/tasks/delete"

_STATUS_NAMES = {types.UNKNOWN: "unknown", types.CREATED: "created", types.RUNNING: "running",
                 types.STOPPED: "stopped", types.PAUSED: "paused", types.PAUSING: "pausing"}

log = get_logger("runtime")


class EventSink(Protocol):
    """What the manager publishes on (the daemon's event exchange fits)."""

    def publish(self, topic: str, event: Message, namespace: str | None = None) -> object: ...


@dataclass(frozen=True)
class Exit:
    """How a process ended: ``exit_status`` is the code or 128 + signal; ``exited_at_ns``
    nanoseconds since the epoch. ``pid`` is 0 where the shim does not say (an exec's Wait)."""

    pid: int
    exit_status: int
    exited_at_ns: int


@dataclass(frozen=True)
class ProcessState:
    id: str
    exec_id: str
    pid: int
    status: str  # created | running | paused | pausing | stopped | unknown
    stdin: str
    stdout: str
    stderr: str
    terminal: bool
    exit_status: int
    exited_at_ns: int
    bundle: str = ""


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    exec_id: str = ""  # set for processes started by Exec


@dataclass(frozen=True)
class CleanedTask:
    namespace: str
    id: str
    exit: Exit
    reason: str


@dataclass
class LoadResult:
    loaded: list[ShimTask] = field(default_factory=list)
    cleaned: list[CleanedTask] = field(default_factory=list)


def _ts(msg) -> int:
    return msg.seconds * 1_000_000_000 + msg.nanos


def _json_any(value: Mapping[str, Any] | bytes | any_pb2.Any, url: str) -> any_pb2.Any:
    if isinstance(value, any_pb2.Any):
        return value
    data = value if isinstance(value, bytes) else json.dumps(value).encode()
    return any_pb2.Any(type_url=url, value=data)


def pack_options(options: Message | any_pb2.Any | None) -> any_pb2.Any | None:
    """Runtime options as the Any containerd sends (``containerd.runc.v1.Options``)."""
    if options is None:
        return None
    if isinstance(options, any_pb2.Any):
        return options
    return any_pb2.Any(type_url=options.DESCRIPTOR.full_name, value=options.SerializeToString())


class ShimTask:
    """The daemon's handle on one shim-backed task; every call goes to its shim.
    ``exec_id=""`` means the init process."""

    def __init__(self, manager: TaskManager, shim: Shim, pid: int) -> None:
        self.manager = manager
        self.shim = shim
        self.pid = pid
        self._closing = False

    @property
    def id(self) -> str:
        return self.shim.bundle.id

    @property
    def namespace(self) -> str:
        return self.shim.bundle.namespace

    @property
    def bundle(self) -> Bundle:
        return self.shim.bundle

    async def _call(self, method: str, request: Message, response_cls: type[Message], timeout: float | None = None):
        return await self.shim.call(method, request, response_cls, timeout=timeout)

    async def start(self, exec_id: str = "") -> int:
        """Start the init (or an exec'd process); returns its pid."""
        resp = await self._call("Start", api.StartRequest(id=self.id, exec_id=exec_id), api.StartResponse)
        if not exec_id:
            self.pid = resp.pid
        return resp.pid

    async def kill(self, signal: int, all: bool = False, exec_id: str = "") -> None:
        await self._call("Kill", api.KillRequest(id=self.id, exec_id=exec_id, signal=signal, all=all),
                         empty_pb2.Empty)

    async def delete(self, exec_id: str = "") -> Exit:
        """Delete an exec'd process, or (``exec_id=""``) the whole task: see
        :meth:`TaskManager.delete_task`."""
        if not exec_id:
            return await self.manager.delete_task(self.namespace, self.id)
        resp = await self._call("Delete", api.DeleteRequest(id=self.id, exec_id=exec_id), api.DeleteResponse)
        return Exit(resp.pid, resp.exit_status, _ts(resp.exited_at))

    async def pids(self) -> list[ProcessInfo]:
        resp = await self._call("Pids", api.PidsRequest(id=self.id), api.PidsResponse)
        out = []
        for p in resp.processes:
            exec_id = ""
            if p.info.type_url.endswith("containerd.runc.v1.ProcessDetails"):
                exec_id = runc_options.ProcessDetails.FromString(p.info.value).exec_id
            out.append(ProcessInfo(p.pid, exec_id))
        return out

    async def pause(self) -> None:
        await self._call("Pause", api.PauseRequest(id=self.id), empty_pb2.Empty)

    async def resume(self) -> None:
        await self._call("Resume", api.ResumeRequest(id=self.id), empty_pb2.Empty)

    async def exec(self, exec_id: str, spec: Mapping[str, Any] | bytes | any_pb2.Any, *, stdin: str = "",
                   stdout: str = "", stderr: str = "", terminal: bool = False) -> None:
        """Register a process (an OCI ``process`` object) to run in the task; start it with
        :meth:`start` (``exec_id``). Raises AlreadyExists for a used id."""
        req = api.ExecProcessRequest(id=self.id, exec_id=exec_id, terminal=terminal, stdin=stdin, stdout=stdout,
                                     stderr=stderr, spec=_json_any(spec, PROCESS_SPEC_URL))
        await self._call("Exec", req, empty_pb2.Empty)

    async def resize_pty(self, width: int, height: int, exec_id: str = "") -> None:
        await self._call("ResizePty", api.ResizePtyRequest(id=self.id, exec_id=exec_id, width=width, height=height),
                         empty_pb2.Empty)

    async def close_io(self, exec_id: str = "", stdin: bool = True) -> None:
        await self._call("CloseIO", api.CloseIORequest(id=self.id, exec_id=exec_id, stdin=stdin),
                         empty_pb2.Empty)

    async def update(self, resources: Mapping[str, Any] | bytes | any_pb2.Any,
                     annotations: Mapping[str, str] | None = None) -> None:
        """Apply OCI ``LinuxResources`` (``runc update``)."""
        req = api.UpdateTaskRequest(id=self.id, resources=_json_any(resources, RESOURCES_URL))
        req.annotations.update(annotations or {})
        await self._call("Update", req, empty_pb2.Empty)

    async def wait(self, exec_id: str = "", timeout: float | None = None) -> Exit:
        """Block until the process exits; its exit status and time."""
        resp = await self._call("Wait", api.WaitRequest(id=self.id, exec_id=exec_id), api.WaitResponse,
                                timeout=timeout)
        return Exit(self.pid if not exec_id else 0, resp.exit_status, _ts(resp.exited_at))

    async def stats(self) -> any_pb2.Any:
        """cgroup metrics: an Any of ``io.containerd.cgroups.v1.Metrics`` or ``….v2.Metrics``."""
        return (await self._call("Stats", api.StatsRequest(id=self.id), api.StatsResponse)).stats

    async def state(self, exec_id: str = "") -> ProcessState:
        r = await self._call("State", api.StateRequest(id=self.id, exec_id=exec_id), api.StateResponse)
        return ProcessState(r.id, r.exec_id, r.pid, _STATUS_NAMES.get(r.status, "unknown"), r.stdin, r.stdout,
                            r.stderr, r.terminal, r.exit_status, _ts(r.exited_at), r.bundle)

    async def checkpoint(self, path: str) -> None:
        await self._call("Checkpoint", api.CheckpointTaskRequest(id=self.id, path=path),
                         empty_pb2.Empty)


class TaskManager:
    """All tasks of the daemon; see the module docstring.

    Args:
        state: the daemon's ``--state`` dir; bundles go to
            ``<state>/io.containerd.runtime.v2.task/<ns>/<id>``.
        address: the daemon's gRPC socket (passed to shims as ``-address``).
        root: the daemon's ``--root`` (bundles' work dirs), optional.
        events: where ``/tasks/exit`` and ``/tasks/delete`` of dead shims are published.
        shim_command, ttrpc_address, publish_binary, debug: see :class:`ShimManager`.
        log_sink: where the ``<bundle>/log`` fifo of shims goes (containerd's shims write
            their log there; default: the daemon's stderr).
    """

    def __init__(self, state: str, *, address: str, root: str | None = None, events: EventSink | None = None,
                 shim_command: Iterable[str] | None = None, ttrpc_address: str | None = None,
                 publish_binary: str = "", debug: bool = False,
                 log_sink: Callable[[bytes], object] | None = None) -> None:
        self.state = state
        self.root = root
        self.events = events
        self.shims = ShimManager(state, address=address, ttrpc_address=ttrpc_address,
                                 command=list(shim_command) if shim_command else None,
                                 publish_binary=publish_binary, debug=debug, log_sink=log_sink)
        self._tasks: dict[tuple[str, str], ShimTask] = {}
        self._creating: set[tuple[str, str]] = set()
        self._background: set[asyncio.Task[None]] = set()

    # --- lookup ---------------------------------------------------------------------------------

    def get(self, namespace: str, id: str) -> ShimTask:
        t = self._tasks.get((namespace, id))
        if t is None:
            raise NotFound(f"task {quote(id)}")
        return t

    def list(self, namespace: str) -> list[ShimTask]:
        return [t for (ns, _), t in sorted(self._tasks.items()) if ns == namespace]

    # --- create / delete ------------------------------------------------------------------------

    async def create(self, namespace: str, container_id: str, bundle_spec_bytes: bytes, rootfs_mounts: Iterable,
                     stdin: str = "", stdout: str = "", stderr: str = "", terminal: bool = False,
                     runtime_options: Message | any_pb2.Any | None = None) -> ShimTask:
        """Write the bundle, start its shim and create the task (state ``created``).

        ``rootfs_mounts`` are :class:`pycontainerd.mount.Mount` or ``containerd.types.Mount``;
        ``stdin``/``stdout``/``stderr`` are fifo paths or a ``file://``/``binary://`` URI.
        On failure nothing is left: no bundle, no shim, no mount. Raises AlreadyExists
        when the task exists, InvalidArgument for bad ids.
        """
        identifiers.validate(namespace)
        identifiers.validate(container_id)
        key = (namespace, container_id)
        if key in self._tasks or key in self._creating:
            raise AlreadyExists(f"task {quote(container_id)}")
        self._creating.add(key)
        t0 = time.monotonic()
        try:
            bundle = await self._create_bundle(namespace, container_id, bundle_spec_bytes)
            t1 = time.monotonic()
            options = pack_options(runtime_options)
            shim: Shim | None = None
            try:
                shim = await self.shims.start(bundle, options)
                t2 = time.monotonic()
                req = api.CreateTaskRequest(id=container_id, bundle=bundle.path, terminal=terminal, stdin=stdin,
                                            stdout=stdout, stderr=stderr)
                for m in rootfs_mounts:
                    req.rootfs.append(mount_to_pb(m))
                if options is not None:
                    req.options.CopyFrom(options)
                try:
                    resp = await shim.call("Create", req, api.CreateTaskResponse)
                except ContainerdError as exc:
                    raise wrap(exc, "failed to create shim task") from exc  # containerd's words
                if enabled(logging.DEBUG):
                    t3 = time.monotonic()
                    log.debug("task created", namespace=namespace, id=container_id, bundle_ms=round((t1 - t0) * 1e3, 1),
                              shim_start_ms=round((t2 - t1) * 1e3, 1), create_ms=round((t3 - t2) * 1e3, 1))
            except BaseException:
                await self._abandon(bundle, shim)
                raise
            task = ShimTask(self, shim, resp.pid)
            self._adopt(task)
            return task
        finally:
            self._creating.discard(key)

    async def _create_bundle(self, namespace: str, id: str, spec: bytes) -> Bundle:
        """:meth:`Bundle.create` in a worker thread (mkdir and writes are slow on a busy
        disk: not on the loop). Cancelled meanwhile, it removes what the thread made."""
        made = asyncio.ensure_future(asyncio.to_thread(Bundle.create, self.state, namespace, id, spec, self.root))
        try:
            return await asyncio.shield(made)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                bundle = await made
                await asyncio.to_thread(bundle.delete)
            raise

    async def _abandon(self, bundle: Bundle, shim: Shim | None) -> None:
        """Undo a half-made task: let its shim go, clean up, remove the bundle.

        The shim may be shared (a pod's, or any ``io.containerd.runc.v2.group``) and serve
        other tasks: it is asked to shut down only if it has nothing left to serve (no
        ``now``, as containerd's ``shimTask.delete``), never forced — one container failing
        to start must not take its neighbours down.
        """
        if shim is not None:
            # the shim may have the task after all (the call was cancelled or timed out)
            with contextlib.suppress(ContainerdError):
                await shim.call("Delete", api.DeleteRequest(id=bundle.id), api.DeleteResponse, timeout=5)
            await _release(shim, bundle.id)
        await self.shims.cleanup(bundle)
        with contextlib.suppress(ContainerdError, OSError):
            await asyncio.to_thread(bundle.delete)

    def _adopt(self, task: ShimTask) -> None:
        self._tasks[(task.namespace, task.id)] = task
        task.shim.client.add_close_callback(lambda: self._on_disconnect(task))

    async def delete_task(self, namespace: str, id: str) -> Exit:
        """Delete the task's init (it must be created or stopped), stop its shim and remove
        the bundle; returns the exit. Raises NotFound, FailedPrecondition (running)."""
        task = self.get(namespace, id)
        shim_gone = False
        try:
            resp = await task.shim.call("Delete", api.DeleteRequest(id=id), api.DeleteResponse)
            exit = Exit(resp.pid, resp.exit_status, _ts(resp.exited_at))
        except Unavailable:
            shim_gone = True
            exit = Exit(task.pid, 255, time.time_ns())
        except NotFound:
            exit = Exit(task.pid, 0, 0)
        task._closing = True
        self._tasks.pop((namespace, id), None)
        if not shim_gone:
            await _release(task.shim, id)
        else:
            await task.shim.close()
            cleaned = await self.shims.cleanup(task.bundle)
            if cleaned is not None:
                exit = Exit(cleaned.pid, cleaned.exit_status, _ts(cleaned.exited_at))
        with contextlib.suppress(OSError):
            # unmount and move aside now (the id is free again), remove the files later:
            # on a busy disk that rmtree is tens of milliseconds of the caller's latency
            moved = await asyncio.to_thread(task.bundle.detach)
            self._in_background(asyncio.to_thread(remove_paths, moved))
        return exit

    # --- dead shims -----------------------------------------------------------------------------

    def _on_disconnect(self, task: ShimTask) -> None:
        if task._closing or self._tasks.get((task.namespace, task.id)) is not task:
            return
        log.warning("shim disconnected; cleaning up after it", namespace=task.namespace, id=task.id)
        self._in_background(self._cleanup_dead(task, "shim disconnected"))

    def _in_background(self, coro) -> None:
        """Run ``coro`` as a task that :meth:`wait_background` (and :meth:`close`) wait for."""
        t = asyncio.get_running_loop().create_task(coro)
        self._background.add(t)
        t.add_done_callback(self._background.discard)

    async def _cleanup_dead(self, task: ShimTask, reason: str) -> CleanedTask:
        self._tasks.pop((task.namespace, task.id), None)
        task._closing = True
        return await self._cleanup_bundle(task.bundle, reason, task.pid)

    async def _cleanup_bundle(self, bundle: Bundle, reason: str, pid: int = 0) -> CleanedTask:
        resp = await self.shims.cleanup(bundle)
        if resp is not None:
            exit = Exit(resp.pid or pid, resp.exit_status, _ts(resp.exited_at))
        else:
            exit = Exit(pid, 255, time.time_ns())
        ev = events.TaskExit(container_id=bundle.id, id=bundle.id, pid=exit.pid, exit_status=exit.exit_status)
        ev.exited_at.FromNanoseconds(exit.exited_at_ns)
        dev = events.TaskDelete(container_id=bundle.id, id=bundle.id, pid=exit.pid, exit_status=exit.exit_status)
        dev.exited_at.FromNanoseconds(exit.exited_at_ns)
        if self.events is not None:
            with contextlib.suppress(Exception):
                self.events.publish(TASK_EXIT, ev, namespace=bundle.namespace)
                self.events.publish(TASK_DELETE, dev, namespace=bundle.namespace)
        with contextlib.suppress(ContainerdError, OSError):
            await asyncio.to_thread(bundle.delete)
        return CleanedTask(bundle.namespace, bundle.id, exit, reason)

    async def wait_background(self) -> None:
        """Wait for dead-shim cleanups and bundle removals in progress (tests, shutdown)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    # --- restart --------------------------------------------------------------------------------

    async def load_existing(self) -> LoadResult:
        """Reconnect to every shim recorded under ``state`` (daemon restart).

        A bundle whose shim answers becomes a task again. One whose shim is gone is cleaned
        up: ``<shim> delete``, ``/tasks/exit`` + ``/tasks/delete`` published, bundle removed;
        it is reported in :attr:`LoadResult.cleaned` with the reason.
        """
        result = LoadResult()
        await asyncio.to_thread(empty_trash, self.state, self.root)  # what a crash left half deleted
        for ns, id in Bundle.list(self.state):
            if (ns, id) in self._tasks or (ns, id) in self._creating:
                continue
            bundle = Bundle.load(self.state, ns, id)
            try:
                shim, info = await self.shims.connect(bundle)
            except ContainerdError as exc:
                result.cleaned.append(await self._cleanup_bundle(bundle, f"shim is gone: {exc}"))
                continue
            try:
                st = await shim.call("State", api.StateRequest(id=id), api.StateResponse, timeout=5)
            except NotFound:
                # the shim is alive but never got the task (the daemon died mid-create); it
                # may serve other tasks of its group: it goes only if it has none
                await _release(shim, id)
                result.cleaned.append(await self._cleanup_bundle(bundle, "task was never created in its shim"))
                continue
            except ContainerdError as exc:
                await shim.close()
                result.cleaned.append(await self._cleanup_bundle(bundle, f"shim does not answer: {exc}"))
                continue
            task = ShimTask(self, shim, st.pid or info.task_pid)
            self._adopt(task)
            result.loaded.append(task)
        return result

    async def close(self) -> None:
        """Disconnect from every shim (the containers keep running)."""
        for task in list(self._tasks.values()):
            task._closing = True
            await task.shim.close()
        self._tasks.clear()
        await self.wait_background()
        await self.shims.close()


async def _release(shim: Shim, id: str) -> None:
    """Done with ``shim`` for task ``id``: ask it to shut down if it serves no task any more
    (a shim shared by a group keeps serving the others) and close the connection."""
    with contextlib.suppress(ContainerdError):
        await shim.call("Shutdown", api.ShutdownRequest(id=id), empty_pb2.Empty, timeout=5)
    await shim.close()
