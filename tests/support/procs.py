"""Stopping the third-party daemons the tests start (dockerd, kubelet)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess


def terminate(proc: subprocess.Popen | None, timeout: float = 30) -> None:
    """SIGTERM ``proc`` (started with ``start_new_session``) and wait; SIGKILL its process
    group if it lingers past ``timeout``."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
