"""Kubernetes' own CRI clients for the tests: ``crictl``, ``critest`` and ``kubelet``, built by
``.ci/go-tools`` from pinned Go module versions into a cache outside the clone.

``crictl(env, "ps", "-a")`` runs crictl against a :class:`tests.support.cri.CRIEnv`'s daemon;
it enters the daemon's network namespace when the daemon has one, so port-forward and exec
stream URLs on the daemon's loopback are reachable, as they are for kubelet on a node.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


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
    argv = [tool("crictl"), "--runtime-endpoint", f"unix://{address}", "--image-endpoint",
            f"unix://{address}", "--timeout", "60s"]
    if netns:  # a pinned path (tests' namespaces) or a name under /var/run/netns
        argv = ["nsenter", f"--net={netns}", *argv] if "/" in netns else ["ip", "netns", "exec", netns, *argv]
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
    """``crictl COMMAND -o json ARGS`` parsed (the flag before the positional arguments: crictl
    stops reading flags at the first one)."""
    return json.loads(crictl(env, args[0], "-o", "json", *args[1:]).stdout)


def wait_for(pred, timeout: float = 30.0, what: str = "condition", every: float = 0.2):
    """``pred()``'s first truthy value; AssertionError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


class Pty:
    """A command on a real pty (what `-t` and a person at a terminal give crictl)."""

    def __init__(self, argv: list[str]) -> None:
        self.master, slave = os.openpty()
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                                     close_fds=True)
        os.close(slave)
        self.out = b""

    def send(self, data: str) -> None:
        os.write(self.master, data.encode())

    def expect(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while text.encode() not in self.out:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{text!r} not seen; got {self.out.decode(errors='replace')!r}")
            r, _, _ = select.select([self.master], [], [], left)
            if r:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:       # EIO: the other side closed
                    chunk = b""
                if not chunk and self.proc.poll() is not None:
                    raise AssertionError(f"exited {self.proc.returncode} before {text!r}: {self.out!r}")
                self.out += chunk
        return self.out.decode(errors="replace")

    def wait(self, timeout: float = 30.0) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            os.close(self.master)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def in_pty(node, *args: str) -> Pty:
    return Pty(crictl_argv(node.address, node.netns) + list(args))
