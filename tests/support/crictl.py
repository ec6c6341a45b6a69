"""Kubernetes' own CRI clients for the tests: ``crictl``, ``critest`` and ``kubelet``, built by
``.ci/go-tools`` from pinned Go module versions into a cache outside the clone.

``crictl(env, "ps", "-a")`` runs crictl against a :class:`tests.support.cri.CRIEnv`'s daemon;
it enters the daemon's network namespace (``nsenter --net``) when the daemon has one, so
port-forward and exec stream URLs on the daemon's loopback are reachable, as they are for
kubelet on a node. :func:`on_pty` runs crictl on a pseudo terminal (``exec -it``, ``attach -it``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import select
import shutil
import signal
import struct
import subprocess
import termios
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PTY_ROWS, PTY_COLS = 33, 101


def tools_dir() -> Path:
    out = subprocess.run(["bash", str(ROOT / ".ci" / "go-tools"), "--print-dir"], check=True,
                         capture_output=True, text=True)
    return Path(out.stdout.strip())


def tool(name: str) -> str:
    """Path of a Go-built tool; fails (never skips) when the install step did not build it."""
    path = tools_dir() / name
    if not os.access(path, os.X_OK):
        found = shutil.which(name)
        if found:
            return found
        pytest.fail(f"{name} is not built: run `bash .ci/go-tools` (the README's install command does)")
    return str(path)


def crictl_argv(address: str, netns: str = "") -> list[str]:
    # --config /dev/null: no /etc/crictl.yaml to read, and no warning about it on stderr
    argv = [tool("crictl"), "--config", "/dev/null", "--runtime-endpoint", f"unix://{address}",
            "--image-endpoint", f"unix://{address}", "--timeout", "60s"]
    if netns:                       # a pinned path (cri_env's), which `ip netns exec` refuses
        argv = ["nsenter", f"--net={netns}", *argv]
    return argv


def crictl(env, *args: str, check: bool = True, timeout: float = 120, input: str | bytes | None = None,
           text: bool = True) -> subprocess.CompletedProcess:
    """Run crictl against ``env`` (a CRIEnv); with ``check`` a failure shows crictl's output."""
    if isinstance(input, bytes):
        text = False
    proc = subprocess.run([*crictl_argv(env.daemon.address, env.netns), *args], capture_output=True,
                          text=text, input=input, timeout=timeout)
    if check and proc.returncode != 0:
        pytest.fail(f"crictl {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def crictl_json(env, *args: str) -> dict:
    """``crictl ARGS -o json`` parsed."""
    return json.loads(crictl(env, *args, "-o", "json").stdout)


# --------------------------------------------------------------------------------------
# a pseudo terminal


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
