"""Running a command to completion from the shim, with ``posix_spawn`` instead of
:mod:`subprocess` (which, with ``threading``, ``selectors`` users and ``contextlib``,
costs ~1 MiB in every shim).

:func:`run` does what the shim needs of ``subprocess.run``: the child's stdin/stdout/stderr
are given fds (``None``: ``/dev/null``) or, with ``capture``, pipes whose output is
returned and whose stdin is ``input``; the child starts with ``SIGPIPE`` and ``SIGXFSZ``
at their defaults (Python ignores them) and without any other fd of the shim (fds the
shim made inheritable are closed in the child, the rest are close-on-exec). The binary is
looked up in ``$PATH``. Raises :class:`OSError` when it cannot be started and
:class:`TimeoutError` (after killing it) when ``timeout`` passes.
"""

from __future__ import annotations

import os
import select
import signal
import time
from collections.abc import Mapping, Sequence

_SIGDEF = (signal.SIGPIPE, signal.SIGXFSZ)


class Result:
    """What :func:`run` returns: ``returncode`` (negative: killed by that signal), and the
    captured ``stdout`` / ``stderr`` (empty without ``capture``)."""

    __slots__ = ("returncode", "stdout", "stderr")

    def __init__(self, returncode: int, stdout: bytes = b"", stderr: bytes = b"") -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def spawn(argv: Sequence[str], stdio: Sequence[int | None], env: Mapping[str, str] | None = None) -> int:
    """Start ``argv`` with ``stdio`` (three fds or None for ``/dev/null``) as its fds 0-2;
    return its pid (the caller waits for it)."""
    own: list[int] = []  # fds opened here, closed once the child has its copies
    try:
        actions = []
        sources = []
        for target, fd in enumerate(stdio):
            if fd is None:
                fd = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
                own.append(fd)
            elif fd < 3 and fd != target:  # an earlier dup2 could overwrite it: use a copy
                fd = os.dup(fd)
                own.append(fd)
            sources.append(fd)
            actions.append((os.POSIX_SPAWN_DUP2, fd, target))
        for fd in _inheritable_fds():
            if fd > 2 and fd not in sources:
                actions.append((os.POSIX_SPAWN_CLOSE, fd))
        return os.posix_spawnp(argv[0], list(argv), os.environ if env is None else env, file_actions=actions,
                               setsigdef=_SIGDEF)
    finally:
        for fd in own:
            os.close(fd)


def _inheritable_fds() -> list[int]:
    out = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if os.get_inheritable(fd):
                out.append(fd)
        except OSError:  # the fd of the listing itself, closed by now
            pass
    return out


def run(argv: Sequence[str], stdio: Sequence[int | None] = (None, None, None), *, capture: bool = False,
        input: bytes | None = None, timeout: float | None = None) -> Result:
    """Run ``argv`` to completion (see the module docstring). With ``capture``, ``stdio``
    is ignored: stdout and stderr are read from pipes, stdin is ``input`` (or ``/dev/null``)."""
    if not capture:
        return Result(_wait(spawn(argv, stdio), timeout))
    in_r = in_w = None
    if input is not None:
        in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        pid = spawn(argv, (in_r, out_w, err_w))
    except BaseException:
        for fd in (in_r, in_w, out_r, out_w, err_r, err_w):
            if fd is not None:
                os.close(fd)
        raise
    for fd in (in_r, out_w, err_w):
        if fd is not None:
            os.close(fd)
    deadline = None if timeout is None else time.monotonic() + timeout
    bufs = {out_r: bytearray(), err_r: bytearray()}
    pending = memoryview(input or b"")
    poller = select.poll()
    for fd in bufs:
        poller.register(fd, select.POLLIN)
    if in_w is not None:
        os.set_blocking(in_w, False)
        poller.register(in_w, select.POLLOUT)
    open_fds = set(bufs) | ({in_w} if in_w is not None else set())
    try:
        while open_fds:
            wait_ms = None if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))
            if wait_ms == 0:
                _kill(pid)
                raise TimeoutError(f"{argv[0]}: timed out after {timeout} s")
            for fd, _ev in poller.poll(wait_ms):
                if fd == in_w:
                    try:
                        n = os.write(fd, pending[:1 << 16])
                    except BlockingIOError:
                        continue
                    except BrokenPipeError:
                        n = len(pending)
                    pending = pending[n:]
                    if not pending:
                        poller.unregister(fd)
                        open_fds.discard(fd)
                        os.close(fd)
                        in_w = None
                    continue
                data = os.read(fd, 1 << 16)
                if data:
                    bufs[fd] += data
                else:
                    poller.unregister(fd)
                    open_fds.discard(fd)
    finally:
        for fd in (in_w, out_r, err_r):
            if fd is not None:
                os.close(fd)
    left = None if deadline is None else max(0.0, deadline - time.monotonic())
    return Result(_wait(pid, left), bytes(bufs[out_r]), bytes(bufs[err_r]))


def _wait(pid: int, timeout: float | None) -> int:
    if timeout is None:
        return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() >= deadline:
            _kill(pid)
            raise TimeoutError(f"pid {pid}: timed out after {timeout} s")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    os.waitpid(pid, 0)
