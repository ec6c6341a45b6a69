"""The debug endpoint, stack dumps and systemd's notices.

As containerd does (``cmd/containerd/command/main.go``), the daemon can serve, besides its
gRPC socket:

* ``[debug] address`` — a small HTTP/1.1 endpoint on a unix socket (an absolute path; mode
  0660, owned by ``[debug] uid/gid``) or on ``host:port``:

  ======================  ==========================================================
  ``GET /debug/loglevel``  the level in force, as text (``info\\n``)
  ``PUT /debug/loglevel``  body ``debug`` (or ``trace``, ``info``, ``warn``, ``error``):
                           every logger switches at once, no restart; ``400`` for an
                           unknown level
  ``GET /debug/stacks``    the stack of every asyncio task and every thread, as text
  ======================  ==========================================================

  e.g. ``curl --unix-socket /run/pycontainerd/debug.sock -X PUT -d debug
  http://localhost/debug/loglevel``.
* ``[metrics] address`` — Prometheus metrics at ``/v1/metrics`` (:mod:`.metrics`).
* ``SIGUSR1`` — the stack dump above, logged at info level (key ``stacks``) and written to
  ``$TMPDIR/pycontainerd.<pid>.stacks.log``, as containerd dumps its goroutines.
* ``$NOTIFY_SOCKET`` — ``READY=1`` once everything serves, ``STOPPING=1`` at shutdown, for a
  systemd ``Type=notify`` unit (``contrib/pycontainerd.service``).

Both endpoints are served by :class:`.http.HTTPServer`; :class:`.operations.Operations`
starts and stops them with the daemon.
"""

from __future__ import annotations

import asyncio
import io
import os
import socket
import sys
import tempfile
import threading
import traceback
from pathlib import Path

from .. import log as logmod
from ..log import get_logger
from ..listen.http import Request, Response

log = get_logger("debug")


# --- stack dumps ------------------------------------------------------------------------------


def _await_chain(coro) -> list:
    """The frames of a suspended coroutine and of everything it awaits, outermost first."""
    frames = []
    seen = 0
    while coro is not None and seen < 256:
        seen += 1
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None) or getattr(coro, "ag_frame", None)
        if frame is not None:
            frames.append(frame)
        coro = (getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
                or getattr(coro, "ag_await", None))
    return frames


def dump_stacks() -> str:
    """Every asyncio task of the running loop (its whole ``await`` chain) and every thread's
    stack, as text — what ``SIGUSR1`` logs and ``GET /debug/stacks`` returns."""
    out = io.StringIO()
    try:
        tasks = sorted(asyncio.all_tasks(), key=lambda t: t.get_name())
    except RuntimeError:  # no running loop
        tasks = []
    out.write(f"=== asyncio tasks ({len(tasks)}) ===\n")
    for task in tasks:
        coro = task.get_coro()
        name = getattr(coro, "__qualname__", type(coro).__name__)
        out.write(f"task {task.get_name()} coro={name}{' (done)' if task.done() else ''}\n")
        summary = traceback.StackSummary.extract(
            ((f, f.f_lineno) for f in _await_chain(coro)), lookup_lines=True
        )
        out.writelines(summary.format())
    threads = {t.ident: t for t in threading.enumerate()}
    frames = sys._current_frames()
    out.write(f"=== threads ({len(frames)}) ===\n")
    for ident, frame in sorted(frames.items()):
        thread = threads.get(ident)
        out.write(f"thread {thread.name if thread else '?'} ident={ident}\n")
        out.writelines(traceback.format_stack(frame))
    return out.getvalue()


def log_stacks() -> Path | None:
    """Log :func:`dump_stacks` and write it to ``$TMPDIR/pycontainerd.<pid>.stacks.log``
    (containerd's ``dumpStacks``); returns the file, or None if it could not be written."""
    text = dump_stacks()
    log.info("=== BEGIN task and thread stack dump ===", stacks=text)
    path = Path(tempfile.gettempdir()) / f"pycontainerd.{os.getpid()}.stacks.log"
    try:
        path.write_text(text)
    except OSError as exc:
        log.warning("cannot write the stack dump", path=str(path), error=exc.strerror)
        return None
    log.info("stack dump written", path=str(path))
    return path


def sd_notify(state: str) -> bool:
    """Tell systemd ``state`` (``READY=1``, ``STOPPING=1``) over ``$NOTIFY_SOCKET`` when it
    is set (a ``Type=notify`` unit, as containerd's); returns whether it was sent. A path
    starting with ``@`` is an abstract socket."""
    target = os.environ.get("NOTIFY_SOCKET", "")
    if not target:
        return False
    address = "\0" + target[1:] if target.startswith("@") else target
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(state.encode(), address)
    except OSError as exc:
        log.warning("cannot notify systemd", socket=target, error=exc.strerror)
        return False
    return True


# --- the debug endpoint -----------------------------------------------------------------------


async def debug_handler(request: Request) -> Response:
    """The routes of the debug endpoint (see the module docstring)."""
    if request.path == "/debug/loglevel":
        if request.method in ("GET", "HEAD"):
            return Response(body=f"{logmod.level()}\n".encode())
        if request.method in ("PUT", "POST"):
            wanted = request.body.decode(errors="replace").strip()
            previous = logmod.level()
            try:
                logmod.set_level(wanted)
            except ValueError as exc:
                return Response(400, f"{exc}\n".encode())
            # not ``level=``: structlog's own key for the line's level would overwrite it
            log.info("log level changed", new_level=logmod.level(), previous=previous)
            return Response(body=f"{logmod.level()}\n".encode())
        return Response(405, b"use GET or PUT\n", headers=[("allow", "GET, HEAD, PUT")])
    if request.path == "/debug/stacks":
        if request.method not in ("GET", "HEAD"):
            return Response(405, b"use GET\n", headers=[("allow", "GET, HEAD")])
        return Response(body=dump_stacks().encode())
    return Response(404, b"not found: try /debug/loglevel or /debug/stacks\n")
