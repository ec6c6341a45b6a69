"""Kubernetes' own CRI clients for the tests: ``crictl``, ``critest`` and ``kubelet``, built by
``.ci/go-tools`` from pinned Go module versions into a cache outside the clone.

``crictl(env, "ps", "-a")`` runs crictl against a :class:`tests.support.cri.CRIEnv`'s daemon;
it enters the daemon's network namespace (``nsenter --net``) when the daemon has one, so
port-forward and exec stream URLs on the daemon's loopback are reachable, as they are for
kubelet on a node.
"""

from __future__ import annotations

import json
import os
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
    # --config /dev/null: no /etc/crictl.yaml to read, and no warning about it on stderr
    argv = [tool("crictl"), "--config", "/dev/null", "--runtime-endpoint", f"unix://{address}",
            "--image-endpoint", f"unix://{address}", "--timeout", "60s"]
    if netns:   # a pinned path (CRIEnv.netns; `ip netns exec` refuses paths) or a name under /var/run/netns
        argv = ["nsenter", f"--net={netns if '/' in netns else '/var/run/netns/' + netns}", *argv]
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
    """``crictl COMMAND -o json ARGS…`` parsed (the flag before the arguments: crictl stops
    reading flags at the first one)."""
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
