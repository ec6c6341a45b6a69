"""The OCI runtime's command line (runc 1.1, crun): one method per subcommand.

Every call is ``<binary> --root <root> --log <bundle>/log.json --log-format json
[--systemd-cgroup] <subcommand> …``, run synchronously through an injectable ``runner``
(tests give a fake one, or a fake ``runc`` script as the binary). A failing call raises
:class:`RuncError` with the runtime's last logged error (``log.json``) or its stderr.

The calls block: the shim is single-threaded, and nothing is reaped while one runs (the
runtime's own exit is collected by the runner, never by the shim's reaper).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence

from ..errdefs import ContainerdError, NotFound
from ..sysutil import files
from .spawn import Result, run


class RuncError(ContainerdError):
    """The OCI runtime failed (status ``UNKNOWN``, as containerd reports it)."""

    code = "UNKNOWN"

    def __init__(self, message: str) -> None:
        self.context = message
        Exception.__init__(self, message)


class Stdio:
    """File descriptors the runtime (and so the container process) inherits; None = /dev/null."""

    __slots__ = ("stdin", "stdout", "stderr")

    def __init__(self, stdin: int | None = None, stdout: int | None = None, stderr: int | None = None) -> None:
        self.stdin, self.stdout, self.stderr = stdin, stdout, stderr


Runner = Callable[[Sequence[str], Stdio | None, bytes | None], Result]
"""``runner(argv, stdio, input) -> Result``: run to completion. With ``stdio`` the child's
stdio are those fds and nothing is captured; without, stdout/stderr are captured and
``input`` (if any) is written to stdin."""


def spawn_runner(argv: Sequence[str], stdio: Stdio | None, input: bytes | None) -> Result:
    """The default :data:`Runner`: :func:`pycontainerd.shim.spawn.run` (``posix_spawn``)."""
    if stdio is not None:
        return run(argv, (stdio.stdin, stdio.stdout, stdio.stderr))
    return run(argv, capture=True, input=input)


class Runc:
    """One runtime binary with its state root; see the module docstring.

    (No dataclass: the shim does not import ``dataclasses``, which pulls in ``inspect``.)
    """

    def __init__(self, binary: str = "runc", root: str = "/run/pycontainerd/runc/default", log: str = "",
                 systemd_cgroup: bool = False, runner: Runner = spawn_runner) -> None:
        self.binary = binary
        self.root = root
        self.log = log
        self.systemd_cgroup = systemd_cgroup
        self.runner = runner

    def __repr__(self) -> str:
        return f"Runc(binary={self.binary!r}, root={self.root!r})"

    def _argv(self, *args: str) -> list[str]:
        argv = [self.binary, "--root", self.root]
        if self.log:
            argv += ["--log", self.log, "--log-format", "json"]
        if self.systemd_cgroup:
            argv.append("--systemd-cgroup")
        return argv + list(args)

    def _run(self, what: str, *args: str, stdio: Stdio | None = None, input: bytes | None = None) -> Result:
        log_size = _size(self.log)
        try:
            res = self.runner(self._argv(*args), stdio, input)
        except OSError as exc:
            detail = exec_error(self.binary, exc)
            if self.log and not os.path.exists(self.log):  # containerd's runtimeError, word for word
                detail = f"unable to retrieve OCI runtime error (open {self.log}: no such file or directory): {detail}"
            raise RuncError(f"{what}: {detail}") from exc
        if res.returncode != 0:
            detail = _last_error(self.log, log_size) or res.stderr.decode(errors="replace").strip() \
                or f"exit status {res.returncode}"
            raise RuncError(f"{what}: {detail}")
        return res

    def create(self, id: str, bundle: str, pid_file: str, *, console_socket: str | None = None,
               stdio: Stdio | None = None, no_pivot: bool = False, no_new_keyring: bool = False) -> None:
        args = ["create", "--bundle", bundle, "--pid-file", pid_file]
        if console_socket:
            args += ["--console-socket", console_socket]
        if no_pivot:
            args.append("--no-pivot")
        if no_new_keyring:
            args.append("--no-new-keyring")
        self._run("OCI runtime create failed", *args, id, stdio=stdio or Stdio())

    def start(self, id: str) -> None:
        self._run("OCI runtime start failed", "start", id)

    def exec(self, id: str, process_json: str, pid_file: str, *, console_socket: str | None = None,
             stdio: Stdio | None = None) -> None:
        args = ["exec", "--detach", "--pid-file", pid_file, "--process", process_json]
        if console_socket:
            args += ["--console-socket", console_socket]
        self._run("OCI runtime exec failed", *args, id, stdio=stdio or Stdio())

    def delete(self, id: str, force: bool = False) -> None:
        """``runc delete``; a container the runtime no longer knows is not an error."""
        try:
            self._run("failed to delete task", "delete", *(["--force"] if force else []), id)
        except RuncError as exc:
            if "does not exist" not in str(exc) and "not found" not in str(exc).lower():
                raise

    def kill(self, id: str, signal: int, all: bool = False) -> None:
        """Raises NotFound when the process has already exited (containerd's ``checkKillError``)."""
        try:
            self._run("unknown error after kill", "kill", *(["--all"] if all else []), id, str(signal))
        except RuncError as exc:
            msg = str(exc)
            if ("process already finished" in msg or "container not running" in msg
                    or "no such process" in msg.lower()):
                raise NotFound("process already finished") from exc
            if "does not exist" in msg:
                raise NotFound("no such container") from exc
            raise

    def pause(self, id: str) -> None:
        self._run("OCI runtime pause failed", "pause", id)

    def resume(self, id: str) -> None:
        self._run("OCI runtime resume failed", "resume", id)

    def ps(self, id: str) -> list[int]:
        res = self._run("failed to list pids", "ps", "--format", "json", id)
        pids = json.loads(res.stdout or b"null")
        return [int(p) for p in pids or []]

    def update(self, id: str, resources_json: bytes) -> None:
        self._run("OCI runtime update failed", "update", "--resources", "-", id, input=resources_json)

    def checkpoint(self, id: str, image_path: str, work_path: str, *, leave_running: bool = True) -> None:
        """``runc checkpoint``; a failure reads as go-runc words it (``runc did not terminate
        successfully: exit status N: <output>``), which containerd passes on."""
        args = ["checkpoint", "--image-path", image_path, "--work-path", work_path]
        if leave_running:
            args.append("--leave-running")
        log_size = _size(self.log)
        try:
            res = self.runner(self._argv(*args, id), None, None)
        except OSError as exc:
            raise RuncError(exec_error(self.binary, exc)) from exc
        if res.returncode != 0:
            output = res.stderr.decode(errors="replace").strip() or _last_error(self.log, log_size)
            raise RuncError(f"{os.path.basename(self.binary)} did not terminate successfully: "
                            f"exit status {res.returncode}: {output}")

    def state(self, id: str) -> dict:
        res = self._run("OCI runtime state failed", "state", id)
        return json.loads(res.stdout)


def exec_error(binary: str, exc: OSError) -> str:
    """Why ``binary`` could not be run, in the words of Go's ``os/exec`` (what containerd's
    shim and every Go tool print, and what scripts match): a bare name not found on
    ``$PATH`` is ``exec: "name": executable file not found in $PATH``; a path that cannot be
    run is ``fork/exec /path: <errno text>``."""
    if "/" not in binary and isinstance(exc, (FileNotFoundError, PermissionError)):
        return f"exec: {json.dumps(binary)}: executable file not found in $PATH"
    text = os.strerror(exc.errno) if exc.errno else str(exc)
    return f"fork/exec {binary}: {text[:1].lower()}{text[1:]}"


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size if path else 0
    except OSError:
        return 0


def _last_error(path: str, offset: int) -> str:
    """The last ``"level":"error"`` message the runtime logged after ``offset``."""
    if not path:
        return ""
    try:
        data = files.read(path, offset)
    except OSError:
        return ""
    msg = ""
    for line in data.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("level") in ("error", "fatal"):
            msg = str(entry.get("msg", ""))
    return msg


def read_pid_file(path: str) -> int:
    return int(files.read(path).strip())
