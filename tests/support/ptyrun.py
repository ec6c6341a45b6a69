"""Run a client (ctr, docker, …) on a pseudo-terminal, as a person at a terminal would, and
collect what it prints."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
import time
from collections.abc import Sequence


def run_in_pty(argv: Sequence[str], *, rows: int = 0, cols: int = 0, timeout: float = 30.0,
               answer: tuple[bytes, bytes] | None = None) -> tuple[int, str]:
    """``argv`` with its stdio on a new pty (window ``rows`` × ``cols`` when given); its exit
    status and everything it wrote. ``answer=(prompt, keys)``: type ``keys`` once ``prompt``
    was printed. Killed if it outlives ``timeout``."""
    controller, worker = pty.openpty()
    if rows and cols:
        fcntl.ioctl(worker, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    proc = subprocess.Popen(list(argv), stdin=worker, stdout=worker, stderr=worker, start_new_session=True)
    os.close(worker)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.2)
            if ready:
                try:
                    out += os.read(controller, 4096)
                except OSError:
                    break
            if answer is not None and answer[0] in out:
                os.write(controller, answer[1])
                answer = None
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(controller)
    return proc.returncode, out.decode(errors="replace")
