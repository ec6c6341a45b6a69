"""The shim zygote: a pre-imported interpreter that forks shims on request.

Starting our shim costs a Python interpreter and its imports (~150 ms on a small machine)
— most of ``ctr run``'s latency. The daemon therefore keeps one *zygote* per
:class:`~pycontainerd.runtime.shim_manager.ShimManager`: a lean interpreter
(``python -S -P``) that has imported everything a shim needs and then waits on a
``SOCK_SEQPACKET`` socket shared with the daemon. For each request it forks a child that
does what ``pycontainerd-shim … start`` (or ``… delete``) would do with the same flags,
working directory, environment and stdin, and answers with what the command would have
printed. For ``start`` the child *becomes* the long-lived shim (binds its socket, new
session, subreaper, bundle as cwd, ``shim.log`` as stderr) and answers once it serves —
one fork instead of an interpreter start plus a fork. It is the zygote's child until the
zygote exits (with the daemon), then init's, like any shim: the runtime v2 contract (and
``pycontainerd-shim start`` for anyone who runs the binary, containerd included) is
unchanged; the zygote is only a faster way for our own daemon to run it.

Wire (each message one datagram of JSON)::

    zygote → daemon   {"ready": <zygote pid>}                        once, after the imports
    daemon → zygote   {"id": N, "argv": [...flags, action], "cwd": bundle,
                       "env": {...}, "stdin": "<hex>"}
    child  → daemon   {"id": N, "rc": 0|1, "stdout": "<hex>", "stderr": "..."}

The child answers on its inherited copy of the socket (datagrams are atomic, so children
never interleave) and closes it. The zygote ignores ``SIGCHLD`` (the kernel reaps shims
that exit) and exits when the daemon closes its end (or dies: ``PR_SET_PDEATHSIG``);
shims it forked live on.

Memory: children share the zygote's pages copy-on-write; ``gc.freeze()`` before serving
keeps the collector from dirtying them, so a shim's private memory (USS/PSS) stays well
below a freshly started interpreter's. A page is copied into a shim when either side writes
it, so the zygote does as little as it can between forks (it only receives and forks; the
child parses the request), and what every shim needs once — modules, the ``unicode_escape``
codec, the libc function pointers, the argv area's address — is set up before serving.
"""

from __future__ import annotations

import _signal
import codecs
import ctypes
import gc
import json
import os
import signal
import socket
import sys

from ..sysutil import libc
from ..sysutil.lean import ZYGOTE_MAX_MESSAGE
from . import main as shim

PRELOAD = (
    "pycontainerd.shim.main", "pycontainerd.shim.service", "pycontainerd.shim.events",
    "pycontainerd.shim.stdio", "pycontainerd.shim.cgroups", "pycontainerd.shim.process",
    "pycontainerd.shim.runc", "pycontainerd.shim.state", "pycontainerd.ttrpc.server",
    "pycontainerd.ttrpc.client", "pycontainerd.ttrpc.reactor", "pycontainerd.shim.spawn",
    "pycontainerd.shim.proto", "pycontainerd.sysutil.mounts", "pycontainerd.sysutil.libc",
    "pycontainerd.sysutil.files", "pycontainerd.sysutil.protowire", "pycontainerd.sysutil.lean",
)
"""What a shim imports while serving a task (see ``tests/unit/test_shim_imports.py``)."""


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    fd = int(args[args.index("-fd") + 1])
    global _ENV, _ARGV_AREA
    for name in PRELOAD:
        __import__(name)
    codecs.lookup("unicode_escape")  # cached now, not imported by each shim (mountinfo paths)
    _ENV = dict(os.environ)
    _ARGV_AREA = _argv_area()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the daemon's Ctrl-C: it closes us when done
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    _die_with_parent()
    sock = socket.socket(fileno=fd)
    sock.setblocking(True)
    gc.collect()
    gc.freeze()  # what is here now is shared with every shim: never scan (and dirty) it
    libc.trim()  # give back what the imports left free, so that no shim maps it
    try:
        sock.send(json.dumps({"ready": os.getpid()}).encode())
    except OSError:  # the daemon died while we started: nobody to serve
        os._exit(0)
    _serve(sock)
    sock.close()


def _serve(sock: socket.socket) -> None:
    """Fork a child per request. The loop touches as little memory as it can (the child
    parses the request): a page the zygote writes after a fork stops being shared with the
    shim forked before, and is counted in that shim's private memory."""
    while True:
        try:
            msg = sock.recv(ZYGOTE_MAX_MESSAGE)  # a fresh mapping each time (over malloc's mmap threshold)
        except OSError:
            return
        if not msg:
            return  # the daemon is gone or closed us
        try:
            pid = os.fork()
        except OSError as exc:
            _reply(sock, _parse(msg), 1, b"", f"pycontainerd-shim: fork: {exc}")
            continue
        if pid == 0:
            _child(sock, _parse(msg))  # never returns


def _parse(msg: bytes) -> dict:
    try:
        req = json.loads(msg.decode())  # a str: json.loads of bytes runs more Python code
    except ValueError:
        req = None
    return req if isinstance(req, dict) else {}


def _child(sock: socket.socket, req: dict) -> None:
    if "id" not in req:
        os._exit(1)  # not a request (nothing to answer)
    answered = False

    def answer(rc: int, out: bytes, err: str) -> None:
        nonlocal answered
        if not answered:
            answered = True
            _reply(sock, req, rc, out, err)
            sock.close()  # a long-lived shim must not hold the zygote's socket

    code = 0
    try:
        # _signal: signal.signal's enum conversions would copy the enum machinery's pages
        _signal.signal(signal.SIGCHLD, _signal.SIG_DFL)
        _signal.signal(signal.SIGINT, _signal.SIG_DFL)
        _set_environ(req.get("env") or {})
        os.chdir(req.get("cwd") or "/")
        f = shim.parse_flags(list(req.get("argv") or []))
        if not f.namespace:
            raise ValueError("shim namespace cannot be empty")
        _set_title(["pycontainerd-shim", "-namespace", f.namespace, "-id", f.id, "-address", f.address]
                   + (["delete"] if f.action == "delete" else []))
        if f.action == "start":
            # this process becomes the shim (it returns only when the group's shim is shared)
            shim.start_here(f, bytes.fromhex(req.get("stdin") or ""), lambda address: answer(0, address.encode(), ""))
        elif f.action == "delete":
            answer(0, shim.delete(f), "")
        else:
            raise ValueError(f"unknown action {f.action!r}")
    except SystemExit as exc:
        answer(1, b"", str(exc.code) if exc.code is not None else "")
        code = 1
    except BaseException as exc:  # the contract: a message and exit status 1
        answer(1, b"", f"pycontainerd-shim: {exc}")
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _reply(sock: socket.socket, req: dict, rc: int, out: bytes, err: str) -> None:
    try:
        sock.send(json.dumps({"id": req.get("id"), "rc": rc, "stdout": out.hex(), "stderr": err}).encode())
    except OSError:
        pass


def _set_environ(env: dict[str, str]) -> None:
    """Make ``os.environ`` equal ``env``, touching only what differs (usually nothing: the
    zygote was started with the daemon's environment, compared as a plain dict first)."""
    if env == _ENV:
        return
    for key in [k for k in os.environ if k not in env]:
        del os.environ[key]
    for key, value in env.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


_ENV: dict[str, str] = {}  # the zygote's environment, as a plain dict
_ARGV_AREA = (0, 0)  # (start, end) address of the zygote's argv strings


def _argv_area() -> tuple[int, int]:
    """``(arg_start, arg_end)`` of this process (``/proc/self/stat`` fields 48 and 49)."""
    try:
        with open("/proc/self/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        return int(fields[45]), int(fields[46])
    except (OSError, ValueError, IndexError):
        return 0, 0


def _set_title(args: list[str]) -> None:
    """Show ``args`` as this process's command line (``ps``, ``/proc/PID/cmdline``) instead of
    the zygote's, as far as the zygote's own argv area has room (best effort)."""
    start, end = _ARGV_AREA
    room = end - start
    if room <= 1:
        return
    data = "\0".join(args).encode(errors="replace")[:room - 1]
    ctypes.memmove(start, data + b"\0" * (room - len(data)), room)
    libc.prctl(libc.PR_SET_NAME, b"pycontainerd-sh", 0, 0, 0)  # comm, 15 characters


def _die_with_parent() -> None:
    libc.prctl(libc.PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
