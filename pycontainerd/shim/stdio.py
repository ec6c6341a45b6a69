"""A process's stdio inside the shim: pipes, fifos, log files, logging binaries and ptys,
copied on the shim's single-threaded reactor.

The client names the stdio as containerd does (``pkg/process/io.go``):

- fifo paths (or empty strings) — the usual case: the runtime gets fresh pipes and the
  shim copies ``stdin fifo → pipe`` and ``pipe → stdout/stderr fifo``. An output fifo is
  opened ``O_RDWR|O_NONBLOCK`` (so the open never waits for a reader and a reader that
  comes and goes never breaks the container's writes); a path that is not a fifo is
  appended to. The stdin fifo is read ``O_RDONLY|O_NONBLOCK`` while the shim also holds a
  writer on it, so the container's stdin reaches EOF only after ``CloseIO`` *and* once every
  client writer is gone (the attach/detach semantics of containerd);
- ``file:///path`` — stdout and stderr are appended to that file;
- ``binary:///path?arg=v`` — a logging binary gets the read ends of the stdout/stderr pipes
  as fds 3 and 4 and signals readiness by closing (or writing to) fd 5; env
  ``CONTAINER_ID`` and ``CONTAINER_NAMESPACE``;
- a terminal: the runtime sends the pty master over a console socket (``SCM_RIGHTS``); the
  shim copies ``stdin fifo → master`` and ``master → stdout fifo``; resize is
  ``TIOCSWINSZ`` on the master.

Output is buffered up to 64 KiB per destination; beyond that the shim stops reading the
source (back-pressure reaches the container), it never blocks the loop.
"""

from __future__ import annotations

import errno
import os
import select
import signal
import socket
import stat
import struct
from collections.abc import Callable

from ..errdefs import InvalidArgument
from ..ttrpc.reactor import Reactor
from .runc import Stdio

LIMIT = 1 << 16
CHUNK = 1 << 15


class Sink:
    """A non-blocking, buffered writer on one fd; shared by reference count."""

    def __init__(self, reactor: Reactor, fd: int, *, close_fd: bool = True, limit: int = LIMIT) -> None:
        self.reactor = reactor
        self.fd = fd
        self.close_fd = close_fd
        self.limit = limit
        self.buf = bytearray()
        self.refs = 1
        self.closed = False
        self.broken = False
        self._closing = False
        self._waiters: list[Callable[[], None]] = []
        os.set_blocking(fd, False)

    def acquire(self) -> Sink:
        self.refs += 1
        return self

    @property
    def room(self) -> bool:
        return len(self.buf) < self.limit

    def wait_room(self, cb: Callable[[], None]) -> None:
        if self.room:
            cb()
        else:
            self._waiters.append(cb)

    def write(self, data: bytes) -> None:
        if self.broken or self.closed:
            return
        self.buf += data
        self._flush()

    def _flush(self) -> None:
        while self.buf and not self.closed:
            try:
                n = os.write(self.fd, self.buf)
            except (BlockingIOError, InterruptedError):
                self.reactor.add_writer(self.fd, self._flush)
                break
            except OSError:  # EPIPE (reader gone), EIO (pty hung up): drop the data
                self.broken = True
                self.buf.clear()
                break
            del self.buf[:n]
        if not self.buf and not self.closed:
            self.reactor.remove_writer(self.fd)
            if self._closing:
                self._close()
        if self.room and self._waiters:
            waiters, self._waiters = self._waiters, []
            for cb in waiters:
                cb()

    def release(self) -> None:
        """Drop one reference; the last one closes the fd once the buffer is written."""
        self.refs -= 1
        if self.refs <= 0:
            self._closing = True
            if not self.buf or self.broken:
                self._close()

    def _close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.reactor.forget(self.fd)
        self.buf.clear()
        if self.close_fd:
            _close(self.fd)
        waiters, self._waiters = self._waiters, []
        for cb in waiters:
            cb()


class Pump:
    """Copies everything readable from ``src`` into ``sink`` until EOF (or EIO of a pty)."""

    def __init__(self, reactor: Reactor, src: int, sink: Sink, *, close_src: bool = True,
                 on_done: Callable[[], None] | None = None) -> None:
        self.reactor = reactor
        self.src = src
        self.sink = sink
        self.close_src = close_src
        self.on_done = on_done
        self.done = False
        os.set_blocking(src, False)
        reactor.add_reader(src, self._on_readable)

    def _on_readable(self) -> None:
        if self.done:
            return
        if self.sink.closed:
            self.finish()
            return
        try:
            data = os.read(self.src, CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # EIO: the pty's other side is closed
            self.finish()
            return
        if not data:
            self.finish()
            return
        self.sink.write(data)
        if not self.sink.room:
            self.reactor.remove_reader(self.src)
            self.sink.wait_room(self._resume)

    def _resume(self) -> None:
        if not self.done:
            self.reactor.add_reader(self.src, self._on_readable)

    def drain(self, limit: int = 4 << 20) -> None:
        """Read what is already there (the process has exited), ignoring back-pressure."""
        total = 0
        while not self.done and total < limit:
            try:
                data = os.read(self.src, CHUNK)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.finish()
                return
            if not data:
                self.finish()
                return
            total += len(data)
            self.sink.write(data)

    def finish(self) -> None:
        if self.done:
            return
        self.done = True
        self.reactor.forget(self.src)
        if self.close_src:
            _close(self.src)
        self.sink.release()
        if self.on_done is not None:
            self.on_done()


def _close(fd: int | None) -> None:
    if fd is not None and fd >= 0:
        try:
            os.close(fd)
        except OSError:
            pass


def _unquote(s: str) -> str:
    """Percent-decoding (``urllib.parse`` pulls ``ipaddress`` and more into every shim)."""
    if "%" not in s:
        return s
    raw = s.encode()
    out = bytearray()
    i = 0
    while i < len(raw):
        pair = raw[i + 1:i + 3]
        if raw[i] == 0x25 and len(pair) == 2 and all(c in b"0123456789abcdefABCDEF" for c in pair):
            out.append(int(pair, 16))
            i += 3
            continue
        out.append(raw[i])
        i += 1
    return out.decode(errors="replace")


def parse_uri(uri: str) -> tuple[str, str, list[tuple[str, str]]]:
    """``(scheme, path, query pairs)`` of ``scheme://host/path?k=v&k2`` (host ignored)."""
    scheme, sep, rest = uri.partition("://")
    if not sep or not scheme.isalnum():
        return "", uri, []
    rest, _, query = rest.partition("?")
    rest = rest.split("#", 1)[0]
    path = rest[rest.index("/"):] if "/" in rest else ""
    pairs = []
    for part in query.split("&") if query else []:
        k, _, v = part.partition("=")
        pairs.append((_unquote(k.replace("+", " ")), _unquote(v.replace("+", " "))))
    return scheme.lower(), _unquote(path), pairs


def is_fifo(path: str) -> bool:
    try:
        return stat.S_ISFIFO(os.stat(path).st_mode)
    except FileNotFoundError:
        return False


class ProcessIO:
    """The stdio of one process. Call order: :meth:`prepare` (fds for the runtime) →
    runtime create/exec → :meth:`start` (copies) → … :meth:`drain` at exit →
    :meth:`close` at delete."""

    def __init__(self, reactor: Reactor, *, id: str, namespace: str, stdin: str = "", stdout: str = "",
                 stderr: str = "", terminal: bool = False, uid: int = 0, gid: int = 0,
                 on_child: Callable[[int], None] | None = None) -> None:
        self.reactor = reactor
        self.id = id
        self.namespace = namespace
        self.stdin, self.stdout, self.stderr = stdin, stdout, stderr
        self.terminal = terminal
        self.uid, self.gid = uid, gid
        self.on_child = on_child  # told the pid of a logging binary (the reaper must expect it)
        self.scheme = ""
        self._uri_path = ""
        self._uri_query: list[tuple[str, str]] = []
        self._child_fds: list[int] = []  # ends handed to the runtime, closed after it returns
        self._stdin_w: int | None = None  # our end of the container's stdin pipe
        self._out_r: int | None = None
        self._err_r: int | None = None
        self._stdin_fifo_r: int | None = None
        self._stdin_holder: int | None = None  # our writer on the stdin fifo (see module doc)
        self.pumps: list[Pump] = []  # output copies
        self.stdin_pump: Pump | None = None
        self.console: int | None = None
        self._console_sock: socket.socket | None = None
        self._console_dir: str | None = None
        self.logger_pid: int | None = None
        self.closed = False

    # --- before the runtime -----------------------------------------------------------------

    @property
    def console_socket(self) -> str | None:
        return self._console_dir and os.path.join(self._console_dir, "pty.sock")

    def prepare(self) -> Stdio:
        """Create what the runtime needs: pipes (or a console socket); returns its stdio."""
        if self.terminal:
            self._console_dir = f"/tmp/pycshim-{os.urandom(6).hex()}"
            os.mkdir(self._console_dir, 0o700)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            sock.bind(self.console_socket)
            sock.listen(1)
            self._console_sock = sock
            return Stdio()
        if not (self.stdin or self.stdout or self.stderr):
            return Stdio()
        scheme, self._uri_path, self._uri_query = parse_uri(self.stdout)
        self.scheme = scheme or "fifo"
        if self.scheme not in ("fifo", "file", "binary"):
            raise InvalidArgument(f"unknown STDIO scheme {self.scheme}")
        io = Stdio()
        if self.stdin:
            r, w = os.pipe()
            io.stdin, self._stdin_w = r, w
            self._child_fds.append(r)
        if self.stdout:
            r, w = os.pipe()
            self._out_r, io.stdout = r, w
            self._child_fds.append(w)
        if self.stderr or self.scheme in ("file", "binary"):
            r, w = os.pipe()
            self._err_r, io.stderr = r, w
            self._child_fds.append(w)
        if self.uid or self.gid:
            for fd in self._child_fds:
                os.fchown(fd, self.uid, self.gid)
        if self.scheme == "binary":
            self._start_logger()
        return io

    def _start_logger(self) -> None:
        ready_r, ready_w = os.pipe()
        args: list[str] = []
        for k, v in self._uri_query:
            args += [k, v] if v else [k]
        path = self._uri_path
        env = {"CONTAINER_ID": self.id, "CONTAINER_NAMESPACE": self.namespace}
        actions = [(os.POSIX_SPAWN_DUP2, self._out_r, 3), (os.POSIX_SPAWN_DUP2, self._err_r, 4),
                   (os.POSIX_SPAWN_DUP2, ready_w, 5)]
        try:
            pid = os.posix_spawn(path, [path, *args], env, file_actions=actions)
        except OSError as exc:
            _close(ready_r)
            _close(ready_w)
            raise InvalidArgument(f"failed to start binary process {path}: {exc.strerror}") from exc
        self.logger_pid = pid
        if self.on_child is not None:
            self.on_child(pid)
        _close(ready_w)
        select.select([ready_r], [], [], 10.0)  # the logger is ready (wrote or closed fd 5)
        _close(ready_r)
        # the logger owns the read ends now; the container writes to the pipes directly
        _close(self._out_r)
        _close(self._err_r)
        self._out_r = self._err_r = None

    # --- after the runtime ------------------------------------------------------------------

    def start(self) -> None:
        """Close the runtime's ends and start copying (receives the pty master for a tty)."""
        for fd in self._child_fds:
            _close(fd)
        self._child_fds.clear()
        if self.stdin:
            self._open_stdin_fifo()
        if self.terminal:
            self._receive_console()
            return
        if self.scheme == "binary":
            return
        if self.scheme == "file":
            path = self._uri_path
            os.makedirs(os.path.dirname(path) or "/", exist_ok=True)
            sink = Sink(self.reactor, os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644))
            if self._out_r is not None:
                self.pumps.append(Pump(self.reactor, self._out_r, sink.acquire()))
            if self._err_r is not None:
                self.pumps.append(Pump(self.reactor, self._err_r, sink.acquire()))
            sink.release()
        else:
            shared: Sink | None = None
            if self._out_r is not None:
                shared = self._open_sink(self.stdout)
                self.pumps.append(Pump(self.reactor, self._out_r, shared))
            if self._err_r is not None:
                if self.stderr == self.stdout and shared is not None:
                    sink = shared.acquire()
                elif self.stderr:
                    sink = self._open_sink(self.stderr)
                else:
                    sink = Sink(self.reactor, os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC))
                self.pumps.append(Pump(self.reactor, self._err_r, sink))
        self._out_r = self._err_r = None
        if self._stdin_fifo_r is not None and self._stdin_w is not None:
            self.stdin_pump = Pump(self.reactor, self._stdin_fifo_r, Sink(self.reactor, self._stdin_w))
            self._stdin_fifo_r = self._stdin_w = None

    def _open_sink(self, path: str) -> Sink:
        if is_fifo(path):
            fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        else:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        return Sink(self.reactor, fd)

    def _open_stdin_fifo(self) -> None:
        if not is_fifo(self.stdin):
            return
        self._stdin_fifo_r = os.open(self.stdin, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        self._stdin_holder = os.open(self.stdin, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)

    def _receive_console(self) -> None:
        assert self._console_sock is not None
        sock = self._console_sock
        sock.settimeout(30.0)
        try:
            conn, _ = sock.accept()
            with conn:
                conn.settimeout(30.0)
                _msg, fds, _flags, _addr = socket.recv_fds(conn, 4096, 1)
        finally:
            self._remove_console_socket()
        if not fds:
            raise OSError(errno.EPROTO, "no pty master received on the console socket")
        self.console = fds[0]
        os.set_blocking(self.console, False)
        if self.stdout:
            self.pumps.append(Pump(self.reactor, self.console, self._open_sink(self.stdout), close_src=False))
        if self._stdin_fifo_r is not None:
            self.stdin_pump = Pump(self.reactor, self._stdin_fifo_r, Sink(self.reactor, os.dup(self.console)))
            self._stdin_fifo_r = None

    def _remove_console_socket(self) -> None:
        if self._console_sock is not None:
            self._console_sock.close()
            self._console_sock = None
        if self._console_dir is not None:
            try:
                os.unlink(os.path.join(self._console_dir, "pty.sock"))
            except OSError:
                pass
            try:
                os.rmdir(self._console_dir)
            except OSError:
                pass
            self._console_dir = None

    # --- while running ------------------------------------------------------------------------

    def resize(self, width: int, height: int) -> None:
        if self.console is None:
            return
        import fcntl
        import termios

        fcntl.ioctl(self.console, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))

    def close_stdin(self) -> None:
        """``CloseIO``: give up the shim's own writer on the stdin fifo (see the module doc);
        without a stdin fifo, close the container's stdin pipe."""
        if self._stdin_holder is not None:
            _close(self._stdin_holder)
            self._stdin_holder = None
        if self._stdin_w is not None:
            _close(self._stdin_w)
            self._stdin_w = None

    def drain(self) -> None:
        """The process exited: copy what its output pipes (or pty) still hold."""
        for p in self.pumps:
            p.drain()

    # --- end ------------------------------------------------------------------------------------

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.drain()
        for p in self.pumps:
            p.finish()
        self.pumps.clear()
        if self.stdin_pump is not None:
            self.stdin_pump.finish()
            self.stdin_pump = None
        for fd in (*self._child_fds, self._stdin_w, self._out_r, self._err_r, self._stdin_fifo_r,
                   self._stdin_holder):
            _close(fd)
        self._child_fds.clear()
        self._stdin_w = self._out_r = self._err_r = self._stdin_fifo_r = self._stdin_holder = None
        if self.console is not None:
            self.reactor.forget(self.console)
            _close(self.console)
            self.console = None
        self._remove_console_socket()
        if self.logger_pid is not None:
            try:
                os.kill(self.logger_pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            self.logger_pid = None
