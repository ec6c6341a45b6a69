"""``pycontainerd-shim``: containerd's runtime v2 shim binary contract.

::

    pycontainerd-shim -namespace NS -address DAEMON_SOCKET -publish-binary BIN -id ID [-debug] start
    pycontainerd-shim -namespace NS -address DAEMON_SOCKET -publish-binary BIN -id ID [-bundle B] delete

Both run with the bundle as the working directory.

``start`` binds the shim's socket — ``<state>/s/<sha256(address/ns/group)>`` where the
bundle is ``<state>/io.containerd.runtime.v2.task/<ns>/<id>`` (containerd uses
``/run/containerd/s/…``); the hash is shortened so the path fits a unix socket — writes
it to ``<bundle>/address``, starts the long-lived shim in a new session (``setsid``)
handing it the listening socket, waits until it is serving, and prints the address
(``unix:///…``, no newline). Started lean (``python -S -P``, :func:`pycontainerd.sysutil.lean.shim_command`, what the
daemon runs) it *forks* the long-lived shim, saving an interpreter start; started with
``site`` (the ``pycontainerd-shim`` console script, e.g. by containerd) it *execs* a lean
interpreter instead, so the long-lived shim never carries ``site``'s imports. Containers
of one group (annotation ``io.containerd.runc.v2.group`` or
``io.kubernetes.cri.sandbox-id``) share one shim: a second ``start`` that finds a live
socket prints the same address. Runtime options (an ``Any`` of
``containerd.runc.v1.Options``) may come on stdin; ``shim_cgroup`` is honoured.

Our own daemon does not run this command for every task: its shim zygote
(:mod:`pycontainerd.shim.zygote`) forks a pre-imported interpreter that carries out the
same ``start`` in place (:func:`start_here`: it binds, becomes the long-lived shim and
announces the address) — the same contract, without an interpreter start.

``delete`` cleans up after a shim that is gone: ``runc delete --force``, unmount
``<bundle>/rootfs``, remove a dead socket, and print a ``DeleteResponse`` (exit status 137,
as containerd's runc shim) on stdout.

The long-lived shim (no action) is a child subreaper, reaps on SIGCHLD, and serves
``containerd.task.v2.Task`` over ttrpc on one thread (:mod:`pycontainerd.ttrpc.reactor`).
It runs without ``site`` (no ``.pth`` hooks) and with only the standard library on its path:
no grpc, asyncio, google.protobuf (:mod:`.proto` speaks the wire), subprocess
(:mod:`.spawn`), dataclasses, hashlib or urllib — its memory is a benchmark figure. It
exits on ``Shutdown`` once it has no tasks, or on SIGTERM. Its own log is ``<bundle>/shim.log``.
"""

from __future__ import annotations

import errno
import json
import os
import select
import signal
import socket
import sys
import time

# the builtin sha256, not hashlib: hashlib loads libcrypto (~4 MiB) into every shim
from _sha256 import sha256

from ..ttrpc.reactor import Reactor
from ..ttrpc.server import Server
from ..sysutil import files, lean, libc
from .events import Publisher
from ..sysutil.mounts import is_mountpoint, unmount_all
from .proto import Any, DeleteResponse, Timestamp
from .runc import RuncError, read_pid_file
from .service import SERVICE, ShimTaskService, parse_options, read_options, runc_for

STATE_DIR_NAME = "io.containerd.runtime.v2.task"
SOCKET_PATH_MAX = 107
GROUP_LABELS = ("io.containerd.runc.v2.group", "io.kubernetes.cri.sandbox-id")
READY_TIMEOUT = 10.0


class Flags:
    namespace = ""
    id = ""
    address = ""
    publish_binary = ""
    bundle = ""
    socket_fd = -1
    ready_fd = -1
    debug = False
    version = False
    action = ""


_BOOL = {"debug", "v"}
_NAMES = {"namespace": "namespace", "id": "id", "address": "address", "publish-binary": "publish_binary",
          "bundle": "bundle", "socket-fd": "socket_fd", "ready-fd": "ready_fd", "socket": "socket"}


def parse_flags(argv: list[str]) -> Flags:
    """Go ``flag`` syntax: ``-name value``, ``-name=value``, ``--name value``, ``-debug``."""
    f = Flags()
    i = 0
    while i < len(argv):
        a = argv[i]
        if not a.startswith("-") or a in ("-", "--"):
            f.action = a if a not in ("-", "--") else (argv[i + 1] if i + 1 < len(argv) else "")
            break
        name, eq, value = a.lstrip("-").partition("=")
        if name in _BOOL:
            on = (value.lower() not in ("false", "0")) if eq else True
            setattr(f, "version" if name == "v" else name, on)
        elif name in _NAMES:
            if not eq:
                i += 1
                if i >= len(argv):
                    raise SystemExit(f"flag needs an argument: -{name}")
                value = argv[i]
            attr = _NAMES[name]
            if attr != "socket":
                setattr(f, attr, int(value) if attr.endswith("_fd") else value)
        else:
            raise SystemExit(f"flag provided but not defined: -{name}")
        i += 1
    return f


def main(argv: list[str] | None = None) -> None:
    f = parse_flags(sys.argv[1:] if argv is None else argv)
    if f.version:
        print(f"{sys.argv[0]}:\n  Version:  0.1.0 (pycontainerd)")
        return
    if not f.namespace:
        sys.exit("shim namespace cannot be empty")
    try:
        if f.action == "start":
            sys.stdout.write(start(f))
            sys.stdout.flush()
        elif f.action == "delete":
            sys.stdout.buffer.write(delete(f))
            sys.stdout.flush()
        elif f.action == "":
            serve(f)
        else:
            sys.exit(f"unknown action {f.action!r}")
    except Exception as exc:  # the contract: a message on stderr and exit 1
        print(f"pycontainerd-shim: {exc}", file=sys.stderr)
        sys.exit(1)


# --- start ------------------------------------------------------------------------------------


def state_dir_of(bundle: str) -> str:
    parts = os.path.normpath(bundle).split(os.sep)
    if len(parts) >= 4 and parts[-3] == STATE_DIR_NAME:
        return os.sep.join(parts[:-3]) or "/"
    return os.environ.get("PYCONTAINERD_STATE", "/run/pycontainerd")


def socket_address(bundle: str, daemon_address: str, namespace: str, group: str) -> str:
    """``unix://<state>/s/<sha256 hex, shortened to fit 107 bytes>``."""
    sdir = os.path.join(state_dir_of(bundle), "s")
    digest = sha256(os.path.join(daemon_address, namespace, group).encode()).hexdigest()
    room = SOCKET_PATH_MAX - len(sdir.encode()) - 1
    if room < 16:
        raise ValueError(f"state dir {sdir!r} is too long for a unix socket path")
    return "unix://" + os.path.join(sdir, digest[:min(64, room)])


def _group(bundle: str, id: str) -> str:
    try:
        data = files.read(os.path.join(bundle, "config.json"))
        if not any(label.encode() in data for label in GROUP_LABELS):
            return id  # the usual case, without parsing the spec (less memory for each shim to copy)
        annotations = json.loads(data.decode()).get("annotations") or {}
    except (OSError, ValueError):
        return id
    for label in GROUP_LABELS:
        if annotations.get(label):
            return annotations[label]
    return id


def write_address(bundle: str, address: str) -> None:
    tmp = os.path.join(bundle, ".address")
    files.write(tmp, address)
    os.rename(tmp, os.path.join(bundle, "address"))


def can_connect(path: str, timeout: float = 0.1) -> bool:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def start(f: Flags, options_data: bytes | None = None) -> str:
    """The ``start`` action; returns the address to print.

    ``options_data`` are the runtime options (an ``Any``) when they do not come on stdin.
    """
    bundle, address, sock = _bind(f)
    if sock is None:
        return address  # the group's shim is alive: share it
    try:
        options = _read_options_stdin() if options_data is None else _parse_options(options_data)
        # started lean (python -S, as the daemon does): fork, saving an interpreter start;
        # started with site (a console script, containerd): exec a lean interpreter instead
        pid = _fork(f, bundle, sock) if sys.flags.no_site else _spawn(f, bundle, sock)
        _apply_shim_cgroup(pid, options.get("shim_cgroup", ""))
        _adjust_oom_score(pid, os.getppid())
    except BaseException:
        _unbind(sock)
        raise
    sock.close()
    return address


def start_here(f: Flags, options_data: bytes, announce) -> None:
    """``start`` without a fork, for a process that is already a fresh copy of an
    interpreter with everything imported (the zygote's child): bind the socket, become the
    long-lived shim (new session, bundle as cwd, ``shim.log`` as stderr) and serve.
    ``announce(address)`` is called once the shim serves (what ``start`` would print)
    — or at once when the group's shim already runs; then this returns. Errors before
    serving raise (nothing is left bound); once serving, it never returns.
    """
    bundle, address, sock = _bind(f)
    if sock is None:
        announce(address)
        return
    try:
        options = _parse_options(options_data)
        _apply_shim_cgroup(os.getpid(), options.get("shim_cgroup", ""))
        _adjust_oom_score(os.getpid(), os.getppid())
        _detach(f, bundle)
    except BaseException:
        _unbind(sock)
        raise
    _run_shim(f, sock, lambda: announce(address))


def _bind(f: Flags) -> tuple[str, str, socket.socket | None]:
    """``(bundle, address, listening socket)``; the socket is None when the group's shim
    already serves at the address (it is shared). The address is written to the bundle."""
    bundle = os.path.abspath(f.bundle or os.getcwd())
    if not f.id:
        raise ValueError("-id is required")
    address = socket_address(bundle, f.address, f.namespace, _group(bundle, f.id))
    path = address[len("unix://"):]
    try:  # usually there: os.makedirs is more Python code for every shim to run
        os.mkdir(os.path.dirname(path), 0o700)
    except FileExistsError:
        pass
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            sock.close()
            raise
        if can_connect(path):  # the group's shim is alive: share it
            sock.close()
            write_address(bundle, address)
            return bundle, address, None
        os.unlink(path)
        sock.bind(path)
    try:
        os.chmod(path, 0o600)
        sock.listen(128)
        write_address(bundle, address)
    except BaseException:
        _unbind(sock)
        raise
    return bundle, address, sock


def _unbind(sock: socket.socket) -> None:
    try:
        path = sock.getsockname()
    except OSError:
        path = ""
    sock.close()
    if isinstance(path, str) and path and not path.startswith("\0"):
        try:
            os.unlink(path)
        except OSError:
            pass


def _detach(f: Flags, bundle: str) -> None:
    """Become the long-lived shim's process: own session, the bundle as working directory,
    stdin/stdout on /dev/null and stderr on ``<bundle>/shim.log``."""
    os.setsid()
    os.chdir(bundle)
    null = os.open(os.devnull, os.O_RDWR)
    log = os.open(os.path.join(bundle, "shim.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.dup2(log, 2)
    os.close(null)
    os.close(log)
    if f.address:
        os.environ.setdefault("TTRPC_ADDRESS", f.address + ".ttrpc")


def _run_shim(f: Flags, sock: socket.socket, on_ready=None) -> None:
    """Serve until shutdown, then exit the process (never returns)."""
    code = 1
    try:
        serve(f, sock, on_ready)
        code = 0
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        os._exit(code)


def _fork(f: Flags, bundle: str, sock: socket.socket) -> int:
    ready_r, ready_w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the long-lived shim
        try:
            os.close(ready_r)
            _detach(f, bundle)
            f.ready_fd = ready_w
        except BaseException:
            import traceback

            traceback.print_exc()
            os._exit(1)
        _run_shim(f, sock)
    os.close(ready_w)
    return _await_ready(ready_r, bundle, pid, None)


def _await_ready(ready_r: int, bundle: str, pid: int, proc) -> int:  # proc: subprocess.Popen or None
    try:
        ready, _, _ = select.select([ready_r], [], [], READY_TIMEOUT)
        ok = bool(ready) and os.read(ready_r, 1) == b"1"
    finally:
        os.close(ready_r)
    if not ok:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
        if proc is not None:
            proc.wait()
        else:
            os.waitpid(pid, 0)
        raise RuntimeError(f"shim did not start; see {os.path.join(bundle, 'shim.log')}: {_tail(bundle)}")
    if proc is not None:
        proc.returncode = 0  # detached: never waited for here (it outlives this process)
    return pid


def _spawn(f: Flags, bundle: str, sock: socket.socket) -> int:
    import subprocess  # this short-lived `start` process only; the long-lived shim never imports it

    ready_r, ready_w = os.pipe()
    argv = [*lean.shim_command(), "-namespace", f.namespace, "-id", f.id, "-address", f.address,
            "-publish-binary", f.publish_binary, "-socket-fd", str(sock.fileno()), "-ready-fd", str(ready_w)]
    if f.debug:
        argv.append("-debug")
    env = dict(os.environ)
    env["PYTHONPATH"] = lean.python_path()
    env.setdefault("TTRPC_ADDRESS", f.address + ".ttrpc" if f.address else "")
    log = os.open(os.path.join(bundle, "shim.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        proc = subprocess.Popen(argv, cwd=bundle, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=log, pass_fds=(sock.fileno(), ready_w), start_new_session=True)
    finally:
        os.close(log)
        os.close(ready_w)
    return _await_ready(ready_r, bundle, proc.pid, proc)


def _tail(bundle: str) -> str:
    try:
        with open(os.path.join(bundle, "shim.log"), "rb") as fh:
            return fh.read()[-500:].decode(errors="replace").strip()
    except OSError:
        return ""


def _read_options_stdin() -> dict:
    try:
        if sys.stdin is None or sys.stdin.isatty():
            return {}
        data = sys.stdin.buffer.read()
    except (OSError, ValueError):
        return {}
    return _parse_options(data)


def _parse_options(data: bytes) -> dict:
    if not data:
        return {}
    return parse_options(Any.decode(data))


def _apply_shim_cgroup(pid: int, cgroup: str) -> None:
    if not cgroup:
        return
    root = "/sys/fs/cgroup"
    targets = [os.path.join(root, cgroup.lstrip("/"))] if os.path.exists(f"{root}/cgroup.controllers") else [
        os.path.join(root, d, cgroup.lstrip("/")) for d in os.listdir(root)
        if os.path.isdir(os.path.join(root, d, cgroup.lstrip("/")))]
    for t in targets:
        files.write(os.path.join(t, "cgroup.procs"), str(pid), create=False)


def _adjust_oom_score(pid: int, parent: int) -> None:
    """The shim's oom_score_adj is its starter's + 1: under pressure it goes before the daemon."""
    try:
        score = int(files.read(f"/proc/{parent}/oom_score_adj").strip())
        files.write(f"/proc/{pid}/oom_score_adj", str(min(1000, score + 1)), create=False)
    except (OSError, ValueError):
        pass


# --- delete -----------------------------------------------------------------------------------


def delete(f: Flags) -> bytes:
    bundle = os.path.abspath(f.bundle or os.getcwd())
    id = f.id or os.path.basename(bundle)
    runc = runc_for(bundle, f.namespace, read_options(bundle))
    try:
        runc.delete(id, force=True)
    except RuncError as exc:
        print(f"pycontainerd-shim: failed to remove runc container: {exc}", file=sys.stderr)
    rootfs = os.path.join(bundle, "rootfs")
    if os.path.isdir(rootfs) and is_mountpoint(rootfs):
        try:
            unmount_all(rootfs)
        except OSError as exc:
            print(f"pycontainerd-shim: failed to cleanup rootfs mount: {exc}", file=sys.stderr)
    try:
        address = files.read_text(os.path.join(bundle, "address")).strip()
        path = address[len("unix://"):] if address.startswith("unix://") else ""
        if path and os.path.exists(path) and not can_connect(path):
            os.unlink(path)
    except OSError:
        pass
    try:
        pid = read_pid_file(os.path.join(bundle, "init.pid"))
    except (OSError, ValueError):
        pid = 0
    return DeleteResponse(pid=pid, exit_status=128 + 9, exited_at=Timestamp.from_ns(time.time_ns())).encode()


# --- the long-lived shim ----------------------------------------------------------------------


def serve(f: Flags, lsock: socket.socket | None = None, on_ready=None) -> None:
    _set_subreaper()
    if lsock is None:
        if f.socket_fd < 0:
            raise ValueError("the long-lived shim needs -socket-fd (run it through `start`)")
        lsock = socket.socket(fileno=f.socket_fd)
    lsock.set_inheritable(False)
    try:
        own_path = lsock.getsockname()
    except OSError:
        own_path = ""
    reactor = Reactor()
    ttrpc_address = os.environ.get("TTRPC_ADDRESS") or (f.address + ".ttrpc" if f.address else "")
    publisher = Publisher(reactor, f.namespace, ttrpc_address, address=f.address,
                          publish_binary=f.publish_binary if f.publish_binary not in ("", "containerd") else "")
    service = ShimTaskService(reactor, f.namespace, publisher, shutdown=reactor.stop)
    server = Server(reactor, require_same_user=True)
    server.register(SERVICE, service.methods())
    server.add_listener(lsock)
    reactor.add_signal_handler(signal.SIGCHLD, service.reap)
    reactor.add_signal_handler(signal.SIGTERM, reactor.stop)
    reactor.add_signal_handler(signal.SIGINT, reactor.stop)
    if f.ready_fd >= 0:
        os.write(f.ready_fd, b"1")
        os.close(f.ready_fd)
    if on_ready is not None:
        on_ready()
    service.reap()
    try:
        reactor.run()
    finally:
        server.flush()
        publisher.close()
        server.close()
        if isinstance(own_path, str) and own_path and not own_path.startswith("\0"):
            try:
                os.unlink(own_path)
            except OSError:
                pass


def _set_subreaper() -> None:
    libc.check(libc.prctl(libc.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "prctl(PR_SET_CHILD_SUBREAPER)")
