"""Starting, reaching and cleaning up shims (containerd's ``runtime/v2/binary.go`` and
``shim.go``), the daemon's side of the runtime v2 binary contract.

- :meth:`ShimManager.start` runs ``<shim> -namespace NS -address A -publish-binary B -id ID
  [-debug] start`` in the bundle (runtime options on stdin, ``TTRPC_ADDRESS`` in the
  environment), reads the printed address and connects; the shim records the address in
  ``<bundle>/address`` and the manager records the command in ``shim-binary-path``.
- :meth:`ShimManager.connect` reconnects to a running shim from its bundle (daemon
  restart); it fails with :class:`~pycontainerd.errdefs.Unavailable` when nobody answers.
- :meth:`ShimManager.cleanup` runs ``<shim> … -id ID -bundle B delete`` for a shim that is
  gone and returns its ``DeleteResponse``.

Any shim that follows the contract works: ours (``pycontainerd-shim``) or, in principle,
containerd's ``containerd-shim-runc-v2``.

With our own shim (the default command) ``start`` and ``delete`` run in a fork of the
manager's shim *zygote* (:mod:`pycontainerd.runtime.zygote`), a pre-imported interpreter,
instead of a new process: the same action with the same flags, directory, environment
and stdin, without an interpreter start (most of a task's start-up time). Should the
zygote be unavailable, the command runs as a process, as for any other shim.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from collections.abc import Callable, Sequence

from google.protobuf import any_pb2
from google.protobuf.message import Message

from ..api.runtime.task.v2 import shim_pb2 as api
from ..errdefs import Unavailable
from ..sysutil.lean import python_path, shim_command
from ..ttrpc import aio, wire
from .bundle import SHIM_BINARY_PATH, Bundle
from .zygote import Zygote, ZygoteUnavailable, enabled_by_env

TASK_SERVICE = "containerd.task.v2.Task"


def default_shim_command() -> list[str]:
    """Our shim, started lean: ``python -S -P -c …`` (see :func:`pycontainerd.sysutil.lean.shim_command`).

    ``pycontainerd-shim`` (the console script) works too, but pays for ``site`` and a
    second interpreter start per task.
    """
    return shim_command()


class ShimLog:
    """The ``<bundle>/log`` fifo containerd's shims write their log to (they fail to start
    without it). Opened ``O_RDWR`` so it never blocks, and copied to ``sink`` (the
    daemon's stderr by default, as containerd does); our own shim logs to ``shim.log``."""

    def __init__(self, bundle: Bundle, sink: Callable[[bytes], object] | None = None) -> None:
        self.fd = os.open(self.make_fifo(bundle), os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        self.sink = sink or _to_stderr
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.fd, self._drain)

    @staticmethod
    def make_fifo(bundle: Bundle) -> str:
        """``<bundle>/log``, made (a fifo, 0700) if missing; returns its path."""
        path = os.path.join(bundle.path, "log")
        if not os.path.exists(path):
            os.mkfifo(path, 0o700)
        return path

    def _drain(self) -> None:
        try:
            data = os.read(self.fd, 1 << 16)
        except BlockingIOError:
            return
        except OSError:
            self.close()
            return
        if data:
            self.sink(data)

    def close(self) -> None:
        if self.fd >= 0:
            self._loop.remove_reader(self.fd)
            os.close(self.fd)
            self.fd = -1


def _to_stderr(data: bytes) -> None:
    try:
        sys.stderr.buffer.write(data)
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass


class Shim:
    """A connected shim: typed calls of ``containerd.task.v2.Task`` for one namespace."""

    def __init__(self, bundle: Bundle, address: str, client: aio.Client, command: Sequence[str],
                 log: ShimLog | None = None) -> None:
        self.bundle = bundle
        self.address = address
        self.client = client
        self.command = list(command)
        self.log = log

    @property
    def namespace(self) -> str:
        return self.bundle.namespace

    async def call(self, method: str, request: Message, response_cls: type[Message], timeout: float | None = None):
        payload = await self.client.call(TASK_SERVICE, method, request.SerializeToString(), timeout=timeout,
                                         metadata=[(wire.NAMESPACE_KEY, self.namespace)])
        return response_cls.FromString(payload)

    async def close(self) -> None:
        await self.client.close()
        if self.log is not None:
            self.log.close()


class ShimManager:
    """See the module docstring.

    Args:
        state: the daemon's ``--state`` (bundles live under it).
        address: the daemon's gRPC socket path (``-address``; shims derive the events
            endpoint ``<address>.ttrpc`` from it unless ``ttrpc_address`` is given).
        command: the shim command (default :func:`default_shim_command`).
        zygote: run our shim's ``start``/``delete`` in forks of a shim zygote (default:
            on, unless ``$PYCONTAINERD_SHIM_ZYGOTE=0``); only used with the default command.
    """

    def __init__(self, state: str, *, address: str, ttrpc_address: str | None = None,
                 command: Sequence[str] | None = None, publish_binary: str = "", debug: bool = False,
                 start_timeout: float = 30.0, env: dict[str, str] | None = None,
                 log_sink: Callable[[bytes], object] | None = None, zygote: bool | None = None) -> None:
        self.state = state
        self.address = address
        self.ttrpc_address = ttrpc_address if ttrpc_address is not None else address + ".ttrpc"
        self.command = list(command) if command else default_shim_command()
        self.publish_binary = publish_binary
        self.debug = debug
        self.start_timeout = start_timeout
        self.env = env
        self.log_sink = log_sink
        if zygote is None:
            zygote = enabled_by_env()
        self.zygote: Zygote | None = None
        if zygote:
            self.zygote = Zygote(self._env(default_shim_command()))

    def _env(self, command: Sequence[str] | None = None) -> dict[str, str]:
        env = dict(os.environ if self.env is None else self.env)
        env["TTRPC_ADDRESS"] = self.ttrpc_address
        if list(command or self.command)[:1] == [sys.executable]:
            env["PYTHONPATH"] = python_path()  # python -S finds nothing by itself
        return env

    def _argv(self, command: Sequence[str], bundle: Bundle, *tail: str) -> list[str]:
        argv = [*command, "-namespace", bundle.namespace, "-address", self.address,
                "-publish-binary", self.publish_binary, "-id", bundle.id]
        if self.debug:
            argv.append("-debug")
        return argv + list(tail)

    async def start(self, bundle: Bundle, options: any_pb2.Any | None = None) -> Shim:
        """Start the shim of ``bundle`` and connect to it.

        Raises :class:`Unavailable` when the shim does not start or cannot be reached.
        """
        stdin = options.SerializeToString() if options is not None and options.type_url else b""
        # the command is recorded and the log fifo made before the shim runs, in a worker
        # thread: on a busy disk these metadata writes can take milliseconds
        await asyncio.to_thread(self._prepare, bundle)
        log = ShimLog(bundle, self.log_sink)
        try:
            return await self._start(bundle, stdin, log)
        except BaseException:
            log.close()
            raise

    def _prepare(self, bundle: Bundle) -> None:
        bundle.write(SHIM_BINARY_PATH, json.dumps(self.command))
        ShimLog.make_fifo(bundle)

    async def _start(self, bundle: Bundle, stdin: bytes, log: ShimLog) -> Shim:
        try:
            rc, out, err = await self._run(self.command, bundle, ("start",), stdin, self.start_timeout)
        except OSError as exc:
            raise Unavailable(f"start shim {self.command[0]}: {exc.strerror or exc}") from exc
        except asyncio.TimeoutError:
            raise Unavailable(f"shim start for task {bundle.id} timed out") from None
        if rc != 0:
            raise Unavailable(f"start shim for task {bundle.id}: {(err or out).decode(errors='replace').strip()}")
        address = out.decode().strip()
        if bundle.address != address:
            bundle.write("address", address)
        client = await aio.Client.connect(address, timeout=self.start_timeout)
        return Shim(bundle, address, client, self.command, log)

    def command_of(self, bundle: Bundle) -> list[str]:
        """The shim command a bundle was started with (``shim-binary-path``), else ours."""
        recorded = bundle.read(SHIM_BINARY_PATH)
        if recorded:
            try:
                cmd = json.loads(recorded)
                if isinstance(cmd, list) and all(isinstance(x, str) for x in cmd) and cmd:
                    return cmd
            except ValueError:
                return [recorded]  # containerd records a bare path
        return self.command

    async def connect(self, bundle: Bundle, timeout: float = 5.0) -> tuple[Shim, api.ConnectResponse]:
        """Reconnect to the shim recorded in ``bundle``; checks it answers ``Connect``.

        Raises :class:`Unavailable` when there is no address or nobody answers there.
        """
        address = bundle.address
        if not address:
            raise Unavailable(f"task {bundle.id}: no shim address recorded")
        client = await aio.Client.connect(address, timeout=timeout)
        shim = Shim(bundle, address, client, self.command_of(bundle), ShimLog(bundle, self.log_sink))
        try:
            resp = await shim.call("Connect", api.ConnectRequest(id=bundle.id), api.ConnectResponse, timeout=timeout)
        except BaseException:
            await shim.close()
            raise
        return shim, resp

    async def cleanup(self, bundle: Bundle, timeout: float = 10.0) -> api.DeleteResponse | None:
        """Run the shim's ``delete`` action for a shim that is gone (None if that failed),
        then remove its socket if nothing answers there any more (containerd's shims leave it)."""
        try:
            return await self._delete_action(bundle, timeout)
        finally:
            _remove_dead_socket(bundle.address)

    async def _run(self, command: Sequence[str], bundle: Bundle, tail: Sequence[str], stdin: bytes | None,
                   timeout: float) -> tuple[int, bytes, bytes]:
        """Run ``<command> <flags> <tail…>`` in the bundle: ``(exit status, stdout, stderr)``.

        Our own shim's actions run in a fork of the zygote when it is available. Raises
        OSError (the command cannot be run) and asyncio.TimeoutError (killed after ``timeout``).
        """
        argv = self._argv(command, bundle, *tail)
        env = self._env(command)
        if self.zygote is not None and list(command) == default_shim_command():
            try:
                rc, out, err = await self.zygote.run(argv[len(command):], cwd=bundle.path, env=env,
                                                     stdin=stdin or b"", timeout=timeout)
                return rc, out, err.encode()
            except ZygoteUnavailable:
                pass  # run the command itself
        proc = await asyncio.create_subprocess_exec(
            *argv, cwd=bundle.path, env=env,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        return proc.returncode if proc.returncode is not None else -1, out, err

    async def close(self) -> None:
        """Stop the zygote (the shims keep running)."""
        if self.zygote is not None:
            await self.zygote.close()

    async def _delete_action(self, bundle: Bundle, timeout: float) -> api.DeleteResponse | None:
        command = self.command_of(bundle)
        try:
            rc, out, _err = await self._run(command, bundle, ("-bundle", bundle.path, "delete"), None, timeout)
        except (OSError, asyncio.TimeoutError):
            return None
        if rc != 0:
            return None
        try:
            return api.DeleteResponse.FromString(out)
        except Exception:
            return None


def _remove_dead_socket(address: str | None) -> None:
    if not address or not address.startswith("unix://"):
        return
    path = address[len("unix://"):]
    if not os.path.exists(path):
        return
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(0.2)
    try:
        s.connect(path)
        return  # alive (a shim shared by a group): keep
    except OSError:
        pass
    finally:
        s.close()
    try:
        os.unlink(path)
    except OSError:
        pass
