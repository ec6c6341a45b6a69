"""``containerd.task.v2.Task``, served by the shim: the calls, the reaper's exits, the events.

Each RPC decodes its request, checks the process's state machine (:mod:`.state`), runs
the OCI runtime (:mod:`.runc`) and answers; ``Wait`` answers later (a
:class:`~pycontainerd.ttrpc.server.Deferred`). Errors are :mod:`pycontainerd.errdefs`
classes, so the daemon sees containerd's codes (``NOT_FOUND`` for an unknown container,
``FAILED_PRECONDITION`` for an illegal transition, ``ALREADY_EXISTS`` for a duplicate exec
id, ``UNIMPLEMENTED`` for Checkpoint).

Event order is an invariant (containerd's ``preStart``/``handleStarted``):

- ``/tasks/create`` → ``/tasks/start`` → ``/tasks/exit`` of a task, and
  ``/tasks/exec-added`` → ``/tasks/exec-started`` → ``/tasks/exit`` of an exec: an exit
  reaped while its process is still being started (or before its pid is known) is held
  back and handled right after the start event;
- the init's ``/tasks/exit`` comes after the exits of the container's running execs (the
  init's exit is held until they are reaped; without a pid namespace the shim kills them);
- a ``Wait`` is answered only after the exit event has been sent to the daemon (or, when
  the daemon cannot be reached, queued for retry), and the exit's output has been copied
  out of the pipes first.
"""

from __future__ import annotations

import json
import os
import time
from collections import OrderedDict
from collections.abc import Callable

from .. import identifiers
from ..errdefs import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    NotImplementedYet,
    quote,
)
from ..ttrpc.reactor import Reactor
from ..ttrpc.server import CallContext, Deferred
from . import events as topics
from ..sysutil import files, mounts
from . import proto as pb
from .cgroups import Cgroup
from .events import Publisher
from .process import Container, Process
from .runc import Runc, RuncError, read_pid_file
from .state import Op, Status
from .stdio import ProcessIO

SERVICE = "containerd.task.v2.Task"
OPTIONS_URL = "containerd.runc.v1.Options"
LEGACY_OPTIONS_URL = "containerd.linux.runc.RuncOptions"  # io.containerd.runtime.v1.linux
VERSION = "pycontainerd-shim 0.1.0"

_STATUS = {
    Status.CREATED: pb.CREATED,
    Status.RUNNING: pb.RUNNING,
    Status.PAUSED: pb.PAUSED,
    Status.STOPPED: pb.STOPPED,
    Status.DELETED: pb.STOPPED,
}
_HELD_EXITS_MAX = 1024
HOLD_KILL_AFTER = 2.0  # s after the init's exit: SIGKILL execs still running
HOLD_MAX = 10.0  # s after the init's exit: publish it even if an exec is still not reaped


def exit_code(wait_status: int) -> int:
    """containerd's exit status: the code, or 128 + signal for a killed process."""
    code = os.waitstatus_to_exitcode(wait_status)
    return 128 - code if code < 0 else code


def default_runc_root(bundle: str) -> str:
    """``<state>/runc`` for a bundle at ``<state>/io.containerd.runtime.v2.task/<ns>/<id>``;
    else ``$PYCONTAINERD_RUNC_ROOT`` or ``/run/pycontainerd/runc``."""
    parts = os.path.normpath(bundle).split(os.sep)
    if len(parts) >= 4 and parts[-3] == "io.containerd.runtime.v2.task":
        return os.path.join(os.sep.join(parts[:-3]) or "/", "runc")
    return os.environ.get("PYCONTAINERD_RUNC_ROOT", "/run/pycontainerd/runc")


def runc_for(bundle: str, namespace: str, options: dict, runner=None) -> Runc:
    """The runtime of a bundle: binary from the options (``BinaryName``), else
    ``$PYCONTAINERD_RUNC``, else ``runc``; root = (options ``Root`` or the default) / ns."""
    binary = options.get("binary_name") or os.environ.get("PYCONTAINERD_RUNC") or "runc"
    root = os.path.join(options.get("root") or default_runc_root(bundle), namespace)
    kw = {"runner": runner} if runner is not None else {}
    return Runc(binary=binary, root=root, log=os.path.join(bundle, "log.json"),
                systemd_cgroup=bool(options.get("systemd_cgroup")), **kw)


def parse_options(opts: pb.Any | None) -> dict:
    """The runc options of a CreateTaskRequest (an ``Any`` of ``containerd.runc.v1.Options``,
    or of the legacy ``containerd.linux.runc.RuncOptions``, read as the same fields) as a
    dict of the fields that are set (empty when none were given).

    Raises:
        InvalidArgument: another type of options, or bytes that are not such a message.
    """
    if opts is None or not opts.type_url:
        return {}
    # "containerd.runc.v1.Options", also as "type.googleapis.com/containerd.runc.v1.Options"
    name = opts.type_url.rsplit("/", 1)[-1]
    cls = {OPTIONS_URL: pb.Options, LEGACY_OPTIONS_URL: pb.RuncOptions}.get(name)
    if cls is None:
        raise InvalidArgument(f"unsupported runtime options {quote(opts.type_url)}")
    try:
        msg = cls.decode(opts.value)
    except ValueError as exc:
        raise InvalidArgument(f"runtime options: {exc}") from exc
    found = pb.options_dict(msg)
    if cls is pb.RuncOptions:
        return {pb.LEGACY_OPTION_NAMES[k]: v for k, v in found.items()}
    return found


def write_options(bundle: str, options: dict) -> None:
    """``options.json`` and ``runtime`` in the bundle, for ``shim delete`` (as containerd)."""
    files.write(os.path.join(bundle, "options.json"), json.dumps(options))  # dumps: the C encoder
    files.write(os.path.join(bundle, "runtime"), options.get("binary_name", ""))


def read_options(bundle: str) -> dict:
    try:
        return json.loads(files.read_text(os.path.join(bundle, "options.json")))
    except (OSError, ValueError):
        return {}


class ShimTaskService:
    """The shim's task service; :meth:`methods` is what the ttrpc server registers."""

    def __init__(self, reactor: Reactor, namespace: str, publisher: Publisher, *,
                 runner=None, shutdown: Callable[[], None] | None = None,
                 clock_ns: Callable[[], int] = time.time_ns) -> None:
        self.reactor = reactor
        self.namespace = namespace
        self.publisher = publisher
        self.runner = runner  # injected into every Runc (tests)
        self.on_shutdown = shutdown
        self.clock_ns = clock_ns
        self.containers: dict[str, Container] = {}
        self._by_pid: dict[int, Process] = {}
        self._held: OrderedDict[int, tuple[int, int]] = OrderedDict()  # pid -> (status, when)
        self._ignored: set[int] = set()  # pids whose exits mean nothing (loggers, deleted inits)

    # --- wiring -----------------------------------------------------------------------------

    def methods(self) -> dict[str, Callable[[bytes, CallContext], bytes | Deferred]]:
        table = {
            "State": (self.state, pb.StateRequest),
            "Create": (self.create, pb.CreateTaskRequest),
            "Start": (self.start, pb.StartRequest),
            "Delete": (self.delete, pb.DeleteRequest),
            "Pids": (self.pids, pb.PidsRequest),
            "Pause": (self.pause, pb.PauseRequest),
            "Resume": (self.resume, pb.ResumeRequest),
            "Checkpoint": (self.checkpoint, pb.CheckpointTaskRequest),
            "Kill": (self.kill, pb.KillRequest),
            "Exec": (self.exec, pb.ExecProcessRequest),
            "ResizePty": (self.resize_pty, pb.ResizePtyRequest),
            "CloseIO": (self.close_io, pb.CloseIORequest),
            "Update": (self.update, pb.UpdateTaskRequest),
            "Wait": (self.wait, pb.WaitRequest),
            "Stats": (self.stats, pb.StatsRequest),
            "Connect": (self.connect, pb.ConnectRequest),
            "Shutdown": (self.shutdown, pb.ShutdownRequest),
        }
        return {name: _handler(fn, req_cls) for name, (fn, req_cls) in table.items()}

    def _container(self, id: str) -> Container:
        c = self.containers.get(id)
        if c is None:
            raise NotFound("container not created")
        return c

    def _publish(self, topic: str, event) -> None:
        self.publisher.publish(topic, event)

    # --- create / start -----------------------------------------------------------------------

    def create(self, r: pb.CreateTaskRequest) -> pb.CreateTaskResponse:
        identifiers.validate(r.id)
        if r.id in self.containers:
            raise AlreadyExists(f"container {quote(r.id)}")
        if r.checkpoint:
            raise NotImplementedYet("restoring a checkpoint")
        if not os.path.isfile(os.path.join(r.bundle, "config.json")):
            raise InvalidArgument(f"bundle {quote(r.bundle)} has no config.json")
        options = parse_options(r.options)
        write_options(r.bundle, options)
        rootfs = ""
        if r.rootfs:
            rootfs = os.path.join(r.bundle, "rootfs")
            os.makedirs(rootfs, mode=0o711, exist_ok=True)
            try:
                mounts.mount_all(r.rootfs, rootfs)
            except OSError as exc:
                raise InvalidArgument(f"failed to mount rootfs component: {exc}") from exc
        try:
            runc = runc_for(r.bundle, self.namespace, options, self.runner)
            c = Container(r.id, r.bundle, self.namespace, runc, rootfs=rootfs, options=options)
            p = c.init
            p.stdin, p.stdout, p.stderr, p.terminal = r.stdin, r.stdout, r.stderr, r.terminal
            p.io = self._new_io(c, p)
            try:
                stdio = p.io.prepare()
                runc.create(r.id, r.bundle, c.pid_file, console_socket=p.io.console_socket, stdio=stdio,
                            no_pivot=bool(options.get("no_pivot_root")),
                            no_new_keyring=bool(options.get("no_new_keyring")))
            except BaseException:
                p.io.close()
                raise
            try:
                p.io.start()
                p.pid = read_pid_file(c.pid_file)
            except BaseException:
                p.io.close()
                _quietly(lambda: runc.delete(r.id, force=True))
                raise
        except BaseException:
            if rootfs:
                _unmount(rootfs)
            raise
        self.containers[r.id] = c
        self._by_pid[p.pid] = p
        c.cgroup = Cgroup.for_pid(p.pid)
        # watch for OOM kills now, between `runc create` and `runc start`: the cgroup exists but
        # the user's process has not run, so a kill within milliseconds of start is not missed
        self._watch_oom(c)
        ev = pb.TaskCreate(container_id=r.id, bundle=r.bundle, rootfs=r.rootfs, checkpoint=r.checkpoint, pid=p.pid,
                           io=pb.TaskIO(stdin=r.stdin, stdout=r.stdout, stderr=r.stderr, terminal=r.terminal))
        self._publish(topics.TASK_CREATE, ev)
        return pb.CreateTaskResponse(pid=p.pid)

    def _new_io(self, c: Container, p: Process) -> ProcessIO:
        return ProcessIO(self.reactor, id=p.id, namespace=self.namespace, stdin=p.stdin, stdout=p.stdout,
                         stderr=p.stderr, terminal=p.terminal, uid=int(c.options.get("io_uid", 0)),
                         gid=int(c.options.get("io_gid", 0)), on_child=self._ignored.add)

    def start(self, r: pb.StartRequest) -> pb.StartResponse:
        c = self._container(r.id)
        p = c.process(r.exec_id)
        p.sm.check(Op.START)
        p.starting = True
        try:
            if p.is_init:
                c.runc.start(c.id)
            else:
                self._start_exec(c, p)
            p.sm.transition(Status.RUNNING)
            if p.is_init:
                if c.cgroup is None:
                    c.cgroup = Cgroup.for_pid(p.pid)
                self._watch_oom(c)  # normally done at create already
                self._publish(topics.TASK_START, pb.TaskStart(container_id=c.id, pid=p.pid))
            else:
                self._publish(topics.TASK_EXEC_STARTED,
                              pb.TaskExecStarted(container_id=c.id, exec_id=p.exec_id, pid=p.pid))
        finally:
            p.starting = False
            held = self._held.pop(p.pid, None) if p.pid else None
            if held is not None:
                self._exited(p, *held)
        return pb.StartResponse(pid=p.pid)

    def _watch_oom(self, c: Container) -> None:
        if c.cgroup is not None and c.oom_watch is None:
            c.oom_watch = c.cgroup.watch_oom(
                self.reactor, lambda: self._publish(topics.TASK_OOM, pb.TaskOOM(container_id=c.id)))

    def _start_exec(self, c: Container, p: Process) -> None:
        spec_path, pid_path = c.exec_paths(p.exec_id)
        files.write(spec_path, p.spec)
        p.io = self._new_io(c, p)
        try:
            stdio = p.io.prepare()
            c.runc.exec(c.id, spec_path, pid_path, console_socket=p.io.console_socket, stdio=stdio)
            p.io.start()
            p.pid = read_pid_file(pid_path)
        except BaseException:
            p.io.close()
            # a failed exec is over: Wait answers (255) and Delete is allowed, nothing hangs
            p.set_exited(255, self.clock_ns())
            p.release_waiters(self._wait_response(p))
            raise
        self._by_pid[p.pid] = p

    # --- exits --------------------------------------------------------------------------------

    def reap(self) -> None:
        """SIGCHLD: collect every exited child and handle it."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.on_exit(pid, exit_code(status))

    def on_exit(self, pid: int, status: int, when_ns: int | None = None) -> None:
        when = self.clock_ns() if when_ns is None else when_ns
        if pid in self._ignored:
            self._ignored.discard(pid)
            return
        p = self._by_pid.get(pid)
        if p is None or p.starting:
            # not ours yet (a start in progress, or a pid not read yet): hold it back
            self._held[pid] = (status, when)
            while len(self._held) > _HELD_EXITS_MAX:
                self._held.popitem(last=False)
            return
        self._exited(p, status, when)

    def _exited(self, p: Process, status: int, when: int) -> None:
        self._by_pid.pop(p.pid, None)
        c = p.container
        if p.is_init:
            if c.kill_all_on_exit:
                _quietly(lambda: c.runc.kill(c.id, 9, all=True))
            if c.running_execs():
                c.held_init_exit = (status, when)
                # with a pid namespace the kernel kills the execs; without one `kill --all`
                # did; should one survive anyway (stuck, or escaped), do not hold the init forever
                self.reactor.call_later(HOLD_KILL_AFTER, lambda: self._kill_held_execs(c))
                self.reactor.call_later(HOLD_MAX, lambda: self._release_held_init(c))
                return
            self._finish_exit(p, status, when)
            return
        self._finish_exit(p, status, when)
        if c.held_init_exit is not None and not c.running_execs():
            held, c.held_init_exit = c.held_init_exit, None
            self._finish_exit(c.init, *held)

    def _kill_held_execs(self, c: Container) -> None:
        if c.held_init_exit is None:
            return
        for e in c.running_execs():
            _quietly(lambda pid=e.pid: os.kill(pid, 9))

    def _release_held_init(self, c: Container) -> None:
        if c.held_init_exit is not None:
            held, c.held_init_exit = c.held_init_exit, None
            self._finish_exit(c.init, *held)

    def _finish_exit(self, p: Process, status: int, when: int) -> None:
        if p.sm.exited:
            return
        if p.io is not None:
            p.io.drain()
        c = p.container
        if p.is_init and p.status is Status.PAUSED:
            _quietly(lambda: c.runc.resume(c.id))  # thaw what is left, as containerd does
        if p.is_init and c.oom_watch is not None:
            c.oom_watch.poll()  # an OOM kill that is already known goes out before the exit
        p.set_exited(status, when)
        ev = pb.TaskExit(container_id=c.id, id=p.id, pid=p.pid, exit_status=status,
                         exited_at=pb.Timestamp.from_ns(when))
        self._publish(topics.TASK_EXIT, ev)
        flush = getattr(self.publisher, "flush", None)
        if flush is not None:
            flush()  # the daemon has the exit before any Wait returns (when it is reachable)
        p.release_waiters(self._wait_response(p))

    # --- delete ---------------------------------------------------------------------------------

    def delete(self, r: pb.DeleteRequest) -> pb.DeleteResponse:
        c = self._container(r.id)
        p = c.process(r.exec_id)
        p.sm.check(Op.DELETE)
        if p.is_init:
            for e in list(c.execs.values()):
                if e.pid and not e.sm.exited:
                    raise FailedPrecondition(f"exec {quote(e.exec_id)} of task {quote(c.id)} is still running")
            c.runc.delete(c.id)
            if p.io is not None:
                p.io.close()
            for e in c.execs.values():
                if e.io is not None:
                    e.io.close()
            if c.rootfs:
                _unmount(c.rootfs)
            if not p.sm.exited:  # deleted before it ran: the runtime killed it
                p.set_exited(128 + 9, self.clock_ns())
                if p.pid:
                    self._by_pid.pop(p.pid, None)
                    self._ignored.add(p.pid)
                    self._held.pop(p.pid, None)
                p.release_waiters(self._wait_response(p))
            p.sm.transition(Status.DELETED)
            if c.oom_watch is not None:
                c.oom_watch.stop()
                c.oom_watch = None
            del self.containers[c.id]
            ev = pb.TaskDelete(container_id=c.id, pid=p.pid, exit_status=p.exit_status, id=c.id,
                               exited_at=pb.Timestamp.from_ns(p.exited_at_ns))
            self._publish(topics.TASK_DELETE, ev)
        else:
            if p.io is not None:
                p.io.close()
            for path in c.exec_paths(p.exec_id):
                _quietly(lambda path=path: os.unlink(path))
            if not p.sm.exited:  # created, never started: containerd reports status 0
                p.set_exited(0, self.clock_ns())
                p.release_waiters(self._wait_response(p))
            p.sm.transition(Status.DELETED)
            del c.execs[p.exec_id]
        return pb.DeleteResponse(pid=p.pid, exit_status=p.exit_status, exited_at=pb.Timestamp.from_ns(p.exited_at_ns))

    # --- the rest ---------------------------------------------------------------------------------

    def state(self, r: pb.StateRequest) -> pb.StateResponse:
        c = self._container(r.id)
        p = c.process(r.exec_id)
        return pb.StateResponse(id=p.id, bundle=c.bundle, pid=p.pid, status=_STATUS[p.status], stdin=p.stdin,
                                stdout=p.stdout, stderr=p.stderr, terminal=p.terminal, exit_status=p.exit_status,
                                exited_at=pb.Timestamp.from_ns(p.exited_at_ns) if p.exited_at_ns else None,
                                exec_id=p.exec_id)

    def pids(self, r: pb.PidsRequest) -> pb.PidsResponse:
        c = self._container(r.id)
        if c.init.sm.exited:
            return pb.PidsResponse()
        by_pid = {e.pid: e for e in c.execs.values() if e.pid}
        resp = pb.PidsResponse()
        for pid in c.runc.ps(c.id):
            e = by_pid.get(pid)
            info = pb.pack(pb.ProcessDetails(exec_id=e.exec_id)) if e is not None else None
            resp.processes.append(pb.ProcessInfo(pid=pid, info=info))
        return resp

    def pause(self, r: pb.PauseRequest) -> pb.Empty:
        c = self._container(r.id)
        c.init.sm.check(Op.PAUSE)
        c.runc.pause(c.id)
        c.init.sm.transition(Status.PAUSED)
        self._publish(topics.TASK_PAUSED, pb.TaskPaused(container_id=c.id))
        return pb.Empty()

    def resume(self, r: pb.ResumeRequest) -> pb.Empty:
        c = self._container(r.id)
        c.init.sm.check(Op.RESUME)
        c.runc.resume(c.id)
        c.init.sm.transition(Status.RUNNING)
        self._publish(topics.TASK_RESUMED, pb.TaskResumed(container_id=c.id))
        return pb.Empty()

    def checkpoint(self, r: pb.CheckpointTaskRequest) -> pb.Empty:
        """Without CRIU the runtime is asked anyway, so the caller reads the runtime's own
        refusal, as from containerd (``UNKNOWN``, "CRIU version check failed: exec: "criu":
        executable file not found in $PATH"); with CRIU: ``UNIMPLEMENTED`` (we do not keep
        checkpoints), before anything is dumped."""
        c = self._container(r.id)
        c.init.sm.check(Op.CHECKPOINT)
        criu = c.options.get("criu_path") or "criu"
        if _which(criu):
            raise NotImplementedYet("checkpoint")
        work = os.path.join(c.bundle, "criu-work")
        os.makedirs(work, exist_ok=True)
        try:
            c.runc.checkpoint(c.id, r.path or work, work)
        except RuncError as exc:
            dump_log = os.path.join(c.bundle, "criu-dump.log")  # kept for the user, as containerd does
            _quietly(lambda: files.write(dump_log, files.read(os.path.join(work, "dump.log"))))
            raise RuncError(f"{exc} path= {dump_log}") from None
        finally:
            _quietly(lambda: _remove_tree(work))
        raise NotImplementedYet("checkpoint")

    def kill(self, r: pb.KillRequest) -> pb.Empty:
        c = self._container(r.id)
        p = c.process(r.exec_id)
        p.sm.check(Op.KILL)
        if p.is_init:
            c.runc.kill(c.id, r.signal, all=r.all)
        elif not p.pid:
            raise FailedPrecondition("process not created")
        else:
            try:
                os.kill(p.pid, r.signal)
            except ProcessLookupError as exc:
                raise NotFound("process already finished") from exc
        return pb.Empty()

    def exec(self, r: pb.ExecProcessRequest) -> pb.Empty:
        c = self._container(r.id)
        identifiers.validate(r.exec_id)
        c.reserve_exec(r.exec_id)
        c.init.sm.check(Op.EXEC)
        try:
            spec = json.loads(_any_value(r.spec) or b"null")
        except ValueError as exc:
            raise InvalidArgument(f"exec {quote(r.exec_id)}: process spec is not JSON: {exc}") from exc
        if not isinstance(spec, dict) or not spec.get("args"):
            raise InvalidArgument(f"exec {quote(r.exec_id)}: process spec needs args")
        # the request says whether the process gets a pty, not the spec (a client copies the
        # container's process, terminal false, and asks for a tty): containerd's shim does this
        spec["terminal"] = bool(r.terminal)
        c.execs[r.exec_id] = Process(c, r.exec_id, stdin=r.stdin, stdout=r.stdout, stderr=r.stderr,
                                     terminal=r.terminal, spec=json.dumps(spec).encode())
        self._publish(topics.TASK_EXEC_ADDED, pb.TaskExecAdded(container_id=c.id, exec_id=r.exec_id))
        return pb.Empty()

    def resize_pty(self, r: pb.ResizePtyRequest) -> pb.Empty:
        p = self._container(r.id).process(r.exec_id)
        p.sm.check(Op.RESIZE)
        if p.io is not None:
            p.io.resize(r.width, r.height)
        return pb.Empty()

    def close_io(self, r: pb.CloseIORequest) -> pb.Empty:
        p = self._container(r.id).process(r.exec_id)
        if r.stdin and p.io is not None:
            p.io.close_stdin()
        return pb.Empty()

    def update(self, r: pb.UpdateTaskRequest) -> pb.Empty:
        c = self._container(r.id)
        c.init.sm.check(Op.UPDATE)
        resources = _any_value(r.resources) or b"{}"
        try:
            json.loads(resources)
        except ValueError as exc:
            raise InvalidArgument(f"resources are not JSON: {exc}") from exc
        c.runc.update(c.id, resources)
        return pb.Empty()

    def wait(self, r: pb.WaitRequest) -> bytes | Deferred:
        p = self._container(r.id).process(r.exec_id)
        if p.sm.exited:
            return self._wait_response(p)
        d = Deferred()
        p.waiters.append(d)
        return d

    @staticmethod
    def _wait_response(p: Process) -> bytes:
        return pb.WaitResponse(exit_status=p.exit_status, exited_at=pb.Timestamp.from_ns(p.exited_at_ns)).encode()

    def stats(self, r: pb.StatsRequest) -> pb.StatsResponse:
        c = self._container(r.id)
        if c.cgroup is None and c.init.pid and not c.init.sm.exited:
            c.cgroup = Cgroup.for_pid(c.init.pid)
        if c.cgroup is None or not c.cgroup.exists():
            raise NotFound("cgroup does not exist")
        return pb.StatsResponse(stats=c.cgroup.stats())

    def connect(self, r: pb.ConnectRequest) -> pb.ConnectResponse:
        c = self.containers.get(r.id)
        return pb.ConnectResponse(shim_pid=os.getpid(), task_pid=c.init.pid if c else 0, version=VERSION)

    def shutdown(self, r: pb.ShutdownRequest) -> pb.Empty:
        if self.containers and not r.now:
            return pb.Empty()
        if self.on_shutdown is not None:
            self.reactor.call_soon(self.on_shutdown)
        return pb.Empty()


def _handler(fn, req_cls) -> Callable[[bytes, CallContext], bytes | Deferred]:
    def handle(payload: bytes, ctx: CallContext) -> bytes | Deferred:
        try:
            req = req_cls.decode(payload)
        except ValueError as exc:
            raise InvalidArgument(f"unmarshal {req_cls.__name__}: {exc}") from exc
        out = fn(req)
        if isinstance(out, (bytes, Deferred)):
            return out
        return out.encode()

    return handle


def _any_value(a: pb.Any | None) -> bytes:
    return a.value if a is not None else b""


def _quietly(fn: Callable[[], object]) -> None:
    try:
        fn()
    except (OSError, RuncError, NotFound):
        pass


def _which(name: str) -> str | None:
    """``shutil.which`` without importing shutil into the shim."""
    if "/" in name:
        return name if os.access(name, os.X_OK) else None
    for d in os.environ.get("PATH", os.defpath).split(os.pathsep):
        path = os.path.join(d or ".", name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def _remove_tree(path: str) -> None:
    for root, dirs, names in os.walk(path, topdown=False):
        for n in names:
            os.unlink(os.path.join(root, n))
        for d in dirs:
            os.rmdir(os.path.join(root, d))
    os.rmdir(path)


def _unmount(path: str) -> None:
    try:
        mounts.unmount_all(path)
    except OSError:
        if mounts.is_mountpoint(path):
            mounts.unmount(path, detach=True)

