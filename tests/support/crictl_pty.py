"""crictl on a pseudo terminal, as a person at a terminal runs ``crictl exec -it`` and
``attach -it``: :func:`on_pty` gives a :class:`PtyCrictl` of ``PTY_ROWS`` x ``PTY_COLS``
whose window can change (SIGWINCH)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import termios
import time

from tests.support.crictl import crictl_argv

PTY_ROWS, PTY_COLS = 33, 101


class PtyCrictl:
    """crictl on a new pseudo terminal of PTY_ROWS x PTY_COLS (its stdin, stdout and stderr, and its
    controlling terminal: a :meth:`resize` sends it SIGWINCH like a terminal window would)."""

    def __init__(self, env, *args: str) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", PTY_ROWS, PTY_COLS, 0, 0))
        try:
            self.proc = subprocess.Popen([*crictl_argv(env.daemon.address, env.netns), *args], stdin=slave,
                                         stdout=slave, stderr=slave, start_new_session=True,
                                         preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
        finally:
            os.close(slave)
        self.out = b""

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def resize(self, rows: int, cols: int) -> None:
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def until_size(self, rows: int, cols: int, timeout: float = 60) -> None:
        """Ask ``stty size`` until the remote terminal is ``rows`` x ``cols`` (the resize
        travels on its own stream, so a command may overtake it)."""
        deadline = time.monotonic() + timeout
        while True:
            self.send(b"stty size\r")
            try:
                self.read_until(f"{rows} {cols}".encode(), timeout=1)
                return
            except AssertionError:
                if time.monotonic() > deadline:
                    raise

    def _read(self, timeout: float) -> bool:
        """Read what is there (waiting up to ``timeout``); False at the end of output."""
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return True
        try:
            chunk = os.read(self.master, 65536)
        except OSError:                       # EIO: every holder of the terminal is gone
            return False
        self.out += chunk
        return bool(chunk)

    def read_until(self, pattern: bytes, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while pattern not in self.out:
            if time.monotonic() > deadline or not self._read(0.2):
                raise AssertionError(f"{pattern!r} never came; got {self.out!r}")

    def until_shell_answers(self, timeout: float = 60) -> None:
        """Type ``echo ready=$((2*21))`` until the remote shell's ``ready=42`` shows (our
        own terminal echoes what we type until crictl makes it raw; an attached shell
        printed its prompt before we came, so there is nothing else to wait for)."""
        deadline = time.monotonic() + timeout
        while True:
            self.send(b"echo ready=$((2*21))\r")
            try:
                self.read_until(b"ready=42", timeout=1)
                return
            except AssertionError:
                if time.monotonic() > deadline:
                    raise

    def wait(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while self._read(0.2) and time.monotonic() < deadline:
            if self.proc.poll() is not None:
                while self._read(0.1):
                    pass
                break
        return self.proc.wait(max(1.0, deadline - time.monotonic()))

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        os.close(self.master)


@contextlib.contextmanager
def on_pty(env, *args: str):
    term = PtyCrictl(env, *args)
    try:
        yield term
    finally:
        term.close()
