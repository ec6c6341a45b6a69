"""Tasks and processes, client side (containerd's ``task.go`` and ``process.go``).

A task is the running side of a container: its init process (``AsyncTask``, id = the
container id) plus processes added with :meth:`AsyncTask.exec` (``AsyncProcess``, id =
the exec id). Both talk to the Tasks service::

    task = await container.new_task(stdio=cio.with_stdio())
    await task.start()
    status = await task.wait()          # ExitStatus(code=0, exited_at=…)
    await task.delete()

Every call raises the :mod:`pycontainerd.errdefs` types: ``NotFound`` (no such task or
process), ``FailedPrecondition`` (e.g. deleting a running task), ``AlreadyExists`` (an exec
id in use), …

Signals are numbers or names (``"SIGTERM"``, ``"TERM"``, ``"9"``). Times are nanoseconds
since the Unix epoch.
"""

from __future__ import annotations

import json
import signal as signal_mod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from google.protobuf import any_pb2
from google.protobuf.message import Message

from ..api.cgroups.v1 import metrics_pb2 as _cgroups_v1  # noqa: F401  (for decoding)
from ..api.cgroups.v2 import metrics_pb2 as _cgroups_v2  # noqa: F401
from ..api.runtime.runc.options import oci_pb2 as _runc_options  # noqa: F401
from ..api.services.tasks.v1 import tasks_pb2 as pb
from ..api.services.tasks.v1 import tasks_pb2_grpc
from ..api.types.task import task_pb2 as types
from ..errdefs import FailedPrecondition, InvalidArgument, NotFound, quote
from ..events.filtering import decode
from ..oci import spec as oci_spec
from ..typeurl import AnyValue
from . import cio
from .connection import mapped

if TYPE_CHECKING:
    from ._protocols import ClientCore

OCI_PROCESS_URL = "types.containerd.io/opencontainers/runtime-spec/1/Process"
"""Type URL containerd uses for a JSON-encoded OCI process spec (``Tasks.Exec``)."""

_STATUS_NAMES = {types.UNKNOWN: "unknown", types.CREATED: "created", types.RUNNING: "running",
                 types.STOPPED: "stopped", types.PAUSED: "paused", types.PAUSING: "pausing"}


@dataclass(frozen=True)
class ExitStatus:
    """How a process ended: ``code`` (128+n for signal n, as the shell reports it) and
    ``exited_at`` (ns since the epoch; 0 if unknown)."""

    code: int
    exited_at: int = 0
    pid: int = 0


@dataclass(frozen=True)
class ProcessStatus:
    """A process as the daemon reports it: ``status`` is ``created``, ``running``,
    ``stopped``, ``paused``, ``pausing`` or ``unknown``; ``exit_status`` and ``exited_at``
    are valid once stopped; ``stdin``/``stdout``/``stderr`` are its fifo paths or URIs."""

    container_id: str
    id: str
    pid: int
    status: str
    exit_status: int = 0
    exited_at: int = 0
    stdin: str = ""
    stdout: str = ""
    stderr: str = ""
    terminal: bool = False


@dataclass(frozen=True)
class ProcessInfo:
    """One host process of a task: ``pid`` and the runtime's ``info`` (for runc a
    ``containerd.runc.v1.ProcessDetails`` naming the exec id), decoded when known."""

    pid: int
    info: Message | AnyValue | None = None

    @property
    def exec_id(self) -> str:
        return getattr(self.info, "exec_id", "") if self.info is not None else ""


@dataclass(frozen=True)
class TaskMetrics:
    """One task's cgroup statistics: ``data`` is an ``io.containerd.cgroups.v1.Metrics`` or
    ``….v2.Metrics`` message (decoded), ``timestamp`` in ns."""

    id: str
    timestamp: int
    data: Message | AnyValue | None


def decode_any(value: any_pb2.Any | None) -> Message | AnyValue | None:
    """A protobuf ``Any`` decoded to its message when its type is known, else an
    :class:`AnyValue`; None for an unset ``Any``."""
    if value is None or not value.type_url:
        return None
    raw = AnyValue(value.type_url, value.value)
    return decode(raw) or raw


def parse_signal(sig: int | str | signal_mod.Signals) -> int:
    """``9``, ``"9"``, ``"KILL"``, ``"SIGKILL"`` → 9. Raises :class:`InvalidArgument`."""
    if isinstance(sig, int):
        if not 0 < int(sig) < 65:
            raise InvalidArgument(f"invalid signal {sig}")
        return int(sig)
    text = str(sig).strip().upper()
    if text.isdigit():
        return parse_signal(int(text))
    name = text if text.startswith("SIG") else "SIG" + text
    try:
        return int(signal_mod.Signals[name])
    except KeyError:
        raise InvalidArgument(f"invalid signal {sig!r}") from None


def _status(container_id: str, p: types.Process) -> ProcessStatus:
    return ProcessStatus(container_id, p.id, p.pid, _STATUS_NAMES.get(p.status, "unknown"), p.exit_status,
                         p.exited_at.ToNanoseconds(), p.stdin, p.stdout, p.stderr, p.terminal)


class AsyncProcess:
    """A process of a task: the init process (see :class:`AsyncTask`) or an exec.

    Attributes: ``container_id``; ``id`` (the exec id, or the container id for init);
    ``pid`` (after :meth:`start`); ``io`` (the client side of its stdio, or None).
    """

    def __init__(self, client: ClientCore, container_id: str, exec_id: str = "", pid: int = 0,
                 io: cio.IO | None = None) -> None:
        self._client = client
        self.container_id = container_id
        self.exec_id = exec_id
        self.pid = pid
        self.io = io
        self._stub = tasks_pb2_grpc.TasksStub(client.conn.channel)

    @property
    def id(self) -> str:
        return self.exec_id or self.container_id

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id!r} pid={self.pid}>"

    def _md(self):
        return self._client.conn.metadata()

    @mapped
    async def start(self) -> int:
        """Start the process; returns its host pid."""
        resp = await self._stub.Start(pb.StartRequest(container_id=self.container_id, exec_id=self.exec_id),
                                      metadata=self._md())
        self.pid = resp.pid
        if self.io is not None:
            self.io.set_stdin_closer(lambda: self.close_io(stdin=True))
        return self.pid

    @mapped
    async def wait(self) -> ExitStatus:
        """Block until the process exits; returns how. Returns at once for a process that
        already exited (until it is deleted)."""
        resp = await self._stub.Wait(pb.WaitRequest(container_id=self.container_id, exec_id=self.exec_id),
                                     metadata=self._md())
        return ExitStatus(resp.exit_status, resp.exited_at.ToNanoseconds(), self.pid)

    @mapped
    async def kill(self, signal: int | str = signal_mod.SIGTERM, all: bool = False) -> None:
        """Send ``signal`` (default SIGTERM) to the process; ``all``: to every process of
        the task. Raises ``NotFound`` when it already exited."""
        await self._stub.Kill(pb.KillRequest(container_id=self.container_id, exec_id=self.exec_id,
                                             signal=parse_signal(signal), all=all), metadata=self._md())

    @mapped
    async def status(self) -> ProcessStatus:
        resp = await self._stub.Get(pb.GetRequest(container_id=self.container_id, exec_id=self.exec_id),
                                    metadata=self._md())
        return _status(self.container_id, resp.process)

    @mapped
    async def resize(self, width: int, height: int) -> None:
        """Resize the process's terminal (columns, rows)."""
        await self._stub.ResizePty(pb.ResizePtyRequest(container_id=self.container_id, exec_id=self.exec_id,
                                                       width=width, height=height), metadata=self._md())

    @mapped
    async def close_io(self, stdin: bool = True) -> None:
        """Close the process's stdin (it reads EOF once every writer is gone)."""
        await self._stub.CloseIO(pb.CloseIORequest(container_id=self.container_id, exec_id=self.exec_id,
                                                   stdin=stdin), metadata=self._md())

    async def _finish_io(self) -> None:
        if self.io is not None:
            self.io.cancel()
            await self.io.wait()

    async def _close_io(self, config: cio.IOConfig | None) -> None:
        if self.io is not None:
            await self.io.close()
        elif config is not None:
            cio.remove_fifos(config)

    @mapped
    async def delete(self) -> ExitStatus:
        """Delete the stopped process (its output copied to the end first); returns its exit
        status. Raises ``FailedPrecondition`` while it runs."""
        config = await self._io_config()
        await self._finish_io()
        resp = await self._stub.DeleteProcess(
            pb.DeleteProcessRequest(container_id=self.container_id, exec_id=self.exec_id), metadata=self._md())
        await self._close_io(config)
        return ExitStatus(resp.exit_status, resp.exited_at.ToNanoseconds(), resp.pid)

    async def _io_config(self) -> cio.IOConfig | None:
        """The process's stdio config; raises ``FailedPrecondition`` while it runs (as
        containerd's client does before a delete)."""
        try:
            s = await self.status()
        except NotFound:
            return None
        if s.status in ("running", "paused", "pausing"):
            what = "task" if not self.exec_id else "process"
            raise FailedPrecondition(f"{what} must be stopped before deletion: {s.status}")
        return cio.IOConfig(s.stdin, s.stdout, s.stderr, s.terminal)


class AsyncTask(AsyncProcess):
    """The running side of a container: its init process plus execs, pause/resume,
    pids, metrics. Made by :meth:`AsyncContainer.new_task` or loaded by
    :meth:`AsyncContainer.task`."""

    def __init__(self, client: ClientCore, container_id: str, pid: int = 0, io: cio.IO | None = None) -> None:
        super().__init__(client, container_id, "", pid, io)

    @mapped
    async def pause(self) -> None:
        """Freeze every process of the task (``/tasks/paused``)."""
        await self._stub.Pause(pb.PauseTaskRequest(container_id=self.container_id), metadata=self._md())

    @mapped
    async def resume(self) -> None:
        """Thaw a paused task (``/tasks/resumed``)."""
        await self._stub.Resume(pb.ResumeTaskRequest(container_id=self.container_id), metadata=self._md())

    @mapped
    async def pids(self) -> list[ProcessInfo]:
        """Every host process in the task's cgroup."""
        resp = await self._stub.ListPids(pb.ListPidsRequest(container_id=self.container_id), metadata=self._md())
        return [ProcessInfo(p.pid, decode_any(p.info) if p.HasField("info") else None) for p in resp.processes]

    @mapped
    async def metrics(self) -> TaskMetrics:
        """The task's cgroup statistics now. Raises ``NotFound`` when the task is gone."""
        resp = await self._stub.Metrics(pb.MetricsRequest(filters=[f"id=={self.container_id}"]),
                                        metadata=self._md())
        for m in resp.metrics:
            if m.id == self.container_id:
                return TaskMetrics(m.id, m.timestamp.ToNanoseconds(), decode_any(m.data))
        raise NotFound(f"no running task found: task {quote(self.container_id)}")

    @mapped
    async def update(self, resources: dict[str, Any]) -> None:
        """Change the task's resources (an OCI ``LinuxResources`` object, e.g.
        ``{"memory": {"limit": 67108864}}``)."""
        value = any_pb2.Any(type_url="types.containerd.io/opencontainers/runtime-spec/1/LinuxResources",
                            value=json.dumps(resources).encode())
        await self._stub.Update(pb.UpdateTaskRequest(container_id=self.container_id, resources=value),
                                metadata=self._md())

    async def exec(self, exec_id: str, args: list[str] | None = None, *, stdio: cio.Creator = cio.null_io,
                   process: dict[str, Any] | None = None, terminal: bool | None = None,
                   env: list[str] | None = None, cwd: str | None = None) -> AsyncProcess:
        """Add a process to the task (not started: call :meth:`AsyncProcess.start`).

        The process spec is ``process`` when given, else the container's ``process`` with
        ``args`` (and ``env`` merged in, ``cwd`` replaced). ``terminal`` defaults to the
        stdio's. Raises ``AlreadyExists`` for an exec id in use.
        """
        if process is None:
            info = await self._client.get_container(self.container_id)
            spec = oci_spec.from_any(info.spec) if info.spec is not None else {}
            process = dict(spec.get("process") or {})
            if args is not None:
                process["args"] = list(args)
            if env:
                from ..oci.opts import replace_or_append_env

                process["env"] = replace_or_append_env(process.get("env") or [], env)
            if cwd:
                process["cwd"] = cwd
        io = await stdio(exec_id)
        term = io.config.terminal if terminal is None else terminal
        if term:
            process["terminal"] = True
        else:
            process.pop("terminal", None)
        try:
            await self._exec_rpc(exec_id, process, io.config, term)
        except BaseException:
            io.cancel()
            await io.close()
            raise
        return AsyncProcess(self._client, self.container_id, exec_id, 0, io)

    @mapped
    async def _exec_rpc(self, exec_id: str, process: dict[str, Any], config: cio.IOConfig, terminal: bool) -> None:
        spec = any_pb2.Any(type_url=OCI_PROCESS_URL, value=json.dumps(process).encode())
        await self._stub.Exec(pb.ExecProcessRequest(container_id=self.container_id, exec_id=exec_id, spec=spec,
                                                    stdin=config.stdin, stdout=config.stdout, stderr=config.stderr,
                                                    terminal=terminal), metadata=self._md())

    async def load_process(self, exec_id: str, attach: cio.Attach | None = None) -> AsyncProcess:
        """An exec'd process by id (``attach`` reconnects to its fifos). Raises ``NotFound``."""
        p = AsyncProcess(self._client, self.container_id, exec_id)
        s = await p.status()
        p.pid = s.pid
        if attach is not None:
            p.io = await attach(cio.IOConfig(s.stdin, s.stdout, s.stderr, s.terminal))
        return p

    @mapped
    async def delete(self) -> ExitStatus:
        """Delete the stopped task (output copied to the end first, the client's fifos
        removed); returns the init process's exit status. Raises ``FailedPrecondition``
        while it runs (kill it and :meth:`wait` first)."""
        config = await self._io_config()
        await self._finish_io()
        resp = await self._stub.Delete(pb.DeleteTaskRequest(container_id=self.container_id), metadata=self._md())
        await self._close_io(config)
        return ExitStatus(resp.exit_status, resp.exited_at.ToNanoseconds(), resp.pid)
