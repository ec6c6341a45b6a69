"""The CRI streaming server judged by Kubernetes' own ``crictl`` (client-go's SPDY executor,
its WebSocket v5 executor and its SPDY port-forward dialer — what kubelet and critest use).

The daemon runs in a network namespace of the test's with a CNI bridge for its pod; crictl
runs inside that namespace (``tests.support.crictl``), as kubelet does on a node, so every
byte stays in namespaces the test owns. Interactive runs (``-it``) get a real pseudo
terminal (the ``pty`` module) of a known size, so the size the container sees is checked.

crictl turns a remote command's non-zero exit into its own exit status 1 and prints the
code client-go decoded from our status ("command terminated with exit code N"); ``exec
-s`` prints "exited with N". Those messages are how the codes propagate, so they are
asserted along with the exit status.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import re
import signal
import socket
import subprocess
import time

import pytest

from pycontainerd.api.cri.runtime.v1 import api_pb2 as cri
from pycontainerd.cri import netns
from tests.support.cri import container_config, cri_env, pod_config
from tests.support.crictl import crictl, crictl_argv
from tests.support.crictl_pty import PTY_COLS, PTY_ROWS, on_pty

pytestmark = [pytest.mark.integration, pytest.mark.root]

HTTP_PORT = 8080
PAGE = "hello-from-crictl-pod"
BIG = 3 << 20                       # bytes of the page fetched through port-forward


@pytest.fixture(scope="module")
def env(tmp_path_factory, registry, ctr_bin):
    subnet = f"10.{random.randint(200, 250)}.{random.randint(0, 255)}.0/24"
    with cri_env(tmp_path_factory.mktemp("crictl-stream") / "cri", registry, netns=True, subnet=subnet,
                 ctr=ctr_bin, debug=True) as e:  # debug: the daemon's task count for the leak check
        yield e


@pytest.fixture(scope="module")
def pod(env):
    """A pod with busybox ``httpd`` on :data:`HTTP_PORT` serving a small and a big page."""
    cfg = pod_config("crictl-stream", log_dir=str(env.log_dir / "crictl-stream"))
    pid = env.client.run_pod(cfg)
    script = (f"mkdir -p /www && echo {PAGE} > /www/index.html && head -c {BIG} /dev/urandom > /www/big"
              f" && exec httpd -f -p {HTTP_PORT} -h /www")
    web = env.client.create(pid, container_config("web", env.images.busybox, command=["sh", "-c", script],
                                                  log_path="web.log"), cfg)
    env.client.start(web)
    deadline = time.monotonic() + 60
    while env.client.exec(web, "wget", "-q", "-O", "/dev/null", f"http://127.0.0.1:{HTTP_PORT}/big").exit_code:
        assert time.monotonic() < deadline, "httpd did not come up in the pod"
        time.sleep(0.1)
    return pid, cfg, web


def _no_unknown_stream(stderr: str | bytes) -> None:
    text = stderr.decode(errors="replace") if isinstance(stderr, bytes) else stderr
    assert "Unknown stream" not in text, text


# -- exec ------------------------------------------------------------------------------------


def test_exec_sync(env, pod):
    _, _, web = pod
    r = crictl(env, "exec", "-s", web, "sh", "-c", "echo out; echo err >&2")
    assert r.stdout == "out\n\nerr\n\n"                  # crictl prints stdout, then stderr
    r = crictl(env, "exec", "-s", web, "sh", "-c", "echo bad >&2; exit 7", check=False)
    assert r.returncode == 1 and "exited with 7: bad" in r.stderr, r


@pytest.mark.parametrize("transport", ["spdy", "websocket"])
def test_exec_stdin_piped(env, pod, transport):
    """``exec -i`` with stdin from a pipe: EOF reaches the process (SPDY: FIN of the stdin
    stream; WebSocket v5: the client's close signal), stdout and stderr stay apart, the
    exit code comes back."""
    _, _, web = pod
    payload = bytes(range(256)) * 1200                    # ~300 KiB: many frames, flow control
    r = crictl(env, "exec", "--transport", transport, "-i", web, "sh", "-c",
               "cat; echo to-err >&2; echo after-eof", input=payload)
    assert r.returncode == 0, r.stderr
    assert r.stdout == payload + b"after-eof\n"
    assert r.stderr == b"to-err\n"
    r = crictl(env, "exec", "--transport", transport, "-i", web, "sh", "-c",
               "echo out:$(cat); echo err >&2; exit 7", input="from-stdin", check=False)
    assert r.stdout == "out:from-stdin\n"
    assert r.stderr.startswith("err\n") and "command terminated with exit code 7" in r.stderr, r.stderr
    assert r.returncode == 1
    _no_unknown_stream(r.stderr)
    r = crictl(env, "exec", "--transport", transport, web, "true")
    assert r.stdout == "" and r.stderr == ""


@pytest.mark.parametrize("transport", ["spdy", "websocket"])
def test_exec_tty(env, pod, transport):
    """``exec -it sh`` on a pseudo terminal: a command's output, the terminal's size and a
    change of it, and ``exit 3``."""
    _, _, web = pod
    with on_pty(env, "exec", "--transport", transport, "-it", web, "sh") as term:
        term.until_shell_answers()
        term.send(b"stty size\r")
        term.read_until(f"{PTY_ROWS} {PTY_COLS}".encode())
        term.resize(41, 127)                         # the window changes while the shell runs
        term.until_size(41, 127)
        term.send(b"tty\r")
        term.read_until(b"/dev/pts/")
        term.send(b"exit 3\r")
        rc = term.wait()
        assert rc == 1 and b"command terminated with exit code 3" in term.out, term.out
        _no_unknown_stream(term.out)
    with on_pty(env, "exec", "--transport", transport, "-it", web, "sh", "-c", "read x; echo got:$x") as term:
        term.send(b"typed\r")
        term.read_until(b"got:typed")
        assert term.wait() == 0, term.out


def test_crictl_killed_mid_exec_leaves_no_process(env, pod):
    """crictl killed (no close, no FIN): the server notices the connection is gone and
    kills the exec process; nothing is left in the container."""
    _, _, web = pod
    proc = subprocess.Popen([*crictl_argv(env.daemon.address, env.netns), "exec", web, "sh", "-c",
                             "echo started; exec sleep 1234"], stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"started\n"
        assert "sleep 1234" in env.client.exec(web, "ps", "-o", "args").stdout.decode()
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    deadline = time.monotonic() + 60
    while "sleep 1234" in (ps := env.client.exec(web, "ps", "-o", "args").stdout.decode()):
        assert time.monotonic() < deadline, f"the exec process outlived its client:\n{ps}"
        time.sleep(0.1)


def test_exec_in_a_stopped_container(env, pod):
    pid, cfg, _ = pod
    cid = env.client.create(pid, container_config("gone", env.images.busybox, command=["true"]), cfg)
    env.client.start(cid)
    env.client.wait_state(cid, cri.CONTAINER_EXITED)
    try:
        r = crictl(env, "exec", cid, "true", check=False)
        assert r.returncode == 1 and "container is in CONTAINER_EXITED state" in r.stderr, r
    finally:
        env.client.RemoveContainer(cri.RemoveContainerRequest(container_id=cid))


# -- attach ----------------------------------------------------------------------------------


def _console(env, pod, name: str, command: list[str], *, tty: bool, stdin_once: bool = False) -> str:
    pid, cfg, _ = pod
    ccfg = container_config(name, env.images.busybox, command=command, tty=tty, log_path=f"{name}.log")
    ccfg.stdin = True
    ccfg.stdin_once = stdin_once
    cid = env.client.create(pid, ccfg, cfg)
    env.client.start(cid)
    return cid


def _remove(env, cid: str) -> None:
    env.client.StopContainer(cri.StopContainerRequest(container_id=cid, timeout=0))
    env.client.RemoveContainer(cri.RemoveContainerRequest(container_id=cid))


def test_attach_tty(env, pod):
    """``attach -i -t`` to a container started with a tty and stdin: input, output, the
    terminal size and a change of it, then ``exit 5`` ends the container and the
    attachment."""
    cid = _console(env, pod, "console", ["sh"], tty=True)
    try:
        with on_pty(env, "attach", "-i", "-t", cid) as term:
            term.until_shell_answers()
            term.until_size(PTY_ROWS, PTY_COLS)
            term.resize(45, 111)
            term.until_size(45, 111)
            term.send(b"exit 5\r")
            assert term.wait() == 0, term.out
        st = env.client.wait_state(cid, cri.CONTAINER_EXITED)
        assert st.state == cri.CONTAINER_EXITED and st.exit_code == 5
    finally:
        _remove(env, cid)


def test_attach_detach_keys_leave_the_container_running(env, pod):
    cid = _console(env, pod, "detached", ["sh"], tty=True)
    try:
        with on_pty(env, "attach", "-i", "-t", cid) as term:
            term.until_shell_answers()
            term.send(b"\x10\x11")               # ctrl-p ctrl-q, crictl's detach sequence
            assert term.wait() == 0, term.out
        assert env.client.status(cid).status.state == cri.CONTAINER_RUNNING
        r = crictl(env, "exec", cid, "echo", "still-here")
        assert r.stdout == "still-here\n"
    finally:
        _remove(env, cid)


def test_attach_stdin_once_piped(env, pod):
    """``attach -i`` without a tty, stdin from a pipe: with ``stdin_once`` the end of our
    stdin is the end of the container's, so its loop ends and so does the attachment."""
    cid = _console(env, pod, "reader", ["sh", "-c", "while read l; do echo got:$l; echo e:$l >&2; done; exit 4"],
                   tty=False, stdin_once=True)
    try:
        r = crictl(env, "attach", "-i", cid, input="one\ntwo\n", check=False)
        assert r.stdout == "got:one\ngot:two\n", r
        assert r.stderr.startswith("e:one\ne:two\n"), r.stderr
        st = env.client.wait_state(cid, cri.CONTAINER_EXITED)
        assert st.exit_code == 4
    finally:
        _remove(env, cid)


# -- port-forward -----------------------------------------------------------------------------


class PortForward:
    """``crictl port-forward POD :PORT`` running; :attr:`local` is the port it listens on
    (in the daemon's namespace, where crictl runs)."""

    def __init__(self, env, pod_id: str, port: int, transport: str = "spdy") -> None:
        self.env = env
        self.proc = subprocess.Popen([*crictl_argv(env.daemon.address, env.netns), "port-forward", "--transport",
                                      transport, pod_id, f":{port}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     start_new_session=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()        # "Forwarding from 127.0.0.1:N -> PORT"
        m = re.match(r"Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)", line)
        if m is None:
            self.close()
            raise AssertionError(f"crictl port-forward: {line!r} {self.stderr()}")
        assert int(m.group(2)) == port
        self.local = int(m.group(1))

    def fetch(self, path: str) -> bytes:
        """The whole reply to ``GET /path`` over a new connection to crictl's local port (the
        socket is made in the daemon's namespace, where crictl listens)."""
        sock = netns.run_in(self.env.netns, lambda: socket.create_connection(("127.0.0.1", self.local), timeout=60))
        with sock:
            sock.sendall(f"GET /{path} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
            reply = bytearray()
            with contextlib.suppress(ConnectionResetError):
                while chunk := sock.recv(1 << 20):
                    reply += chunk
        return bytes(reply)

    def stderr(self) -> str:
        if self.proc.poll() is None:
            return ""
        assert self.proc.stderr is not None
        return self.proc.stderr.read().decode(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        for f in (self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()


def _body(reply: bytes) -> bytes:
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0].endswith(b" 200 OK"), head
    return body


@pytest.mark.parametrize("transport", ["spdy", "websocket"])
def test_port_forward_to_httpd(env, pod, transport):
    """SPDY (POST + upgrade), and SPDY tunnelled in a WebSocket (``SPDY/3.1+portforward.k8s.io``,
    which Kubernetes' API server terminates; we serve it directly)."""
    pid, _, web = pod
    want = crictl(env, "exec", web, "sha256sum", "/www/big").stdout.split()[0]
    pf = PortForward(env, pid, HTTP_PORT, transport)
    try:
        assert _body(pf.fetch("index.html")) == PAGE.encode() + b"\n"
        for _ in range(2):                                  # more connections, one SPDY session
            body = _body(pf.fetch("big"))
            assert len(body) == BIG and hashlib.sha256(body).hexdigest() == want
        assert pf.proc.poll() is None, pf.stderr()
    finally:
        pf.close()


@pytest.mark.parametrize("transport", ["spdy", "websocket"])
def test_port_forward_to_a_port_nothing_listens_on(env, pod, transport):
    """The connection fails with our message on the error stream; client-go prints it and
    ends the port-forward (crictl exits 1)."""
    pid, _, _ = pod
    pf = PortForward(env, pid, 9, transport)
    try:
        assert pf.fetch("") == b""
        pf.proc.wait(60)
        err = pf.stderr()
        assert pf.proc.returncode == 1, err
        assert f"error forwarding port 9 to pod {pid}, uid : failed to connect to localhost:9 inside namespace" in err
        assert "refused" in err, err
    finally:
        pf.close()


# -- leaks -----------------------------------------------------------------------------------


def test_crictl_sessions_leave_no_daemon_task(env, pod):
    """After exec, attach and port-forward sessions of every transport have ended, the
    daemon's asyncio task count is back to where it was."""
    pid, _, web = pod
    crictl(env, "exec", web, "true")                               # warm: what is made lazily exists
    baseline = env.asyncio_tasks()
    for transport in ("spdy", "websocket"):
        assert crictl(env, "exec", "--transport", transport, "-i", web, "cat", input="x").stdout == "x"
        pf = PortForward(env, pid, HTTP_PORT, transport)
        try:
            assert _body(pf.fetch("index.html")) == PAGE.encode() + b"\n"
        finally:
            pf.close()
    deadline = time.monotonic() + 60
    while (count := env.asyncio_tasks()) > baseline:
        assert time.monotonic() < deadline, f"{count - baseline} asyncio task(s) left in the daemon"
        time.sleep(0.1)
