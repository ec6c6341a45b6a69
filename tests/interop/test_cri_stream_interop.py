"""The CRI streaming server with real third-party parts:

- the ``kubernetes`` Python package's WebSocket clients (``kubernetes.stream.ws_client``:
  ``WSClient`` for remote command v5/v4, ``PortForward`` for port-forward), pointed at the
  URLs our Exec/PortForward return (http→ws), as a kubelet-side client would connect;
- Debian's containerd with its CRI plugin as the *server*, driven by our SPDY/3.1 client:
  a Go SPDY implementation (spdystream, the one kubelet and crictl use) must understand our
  frames and header compression, and we theirs;
- ``kubectl`` (client-go's SPDY and WebSocket executors, its SPDY port-forward dialer and
  its SPDY-in-WebSocket one) as the *client* of our server, through a stand-in API server
  that does kubelet's part (asks the CRI for the URL, relays the upgraded connection).

Pods use the host network (no CNI), daemons their own temp roots.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import threading
import uuid

import grpc
import pytest

from pycontainerd.api.cri.runtime.v1 import api_pb2 as cri
from pycontainerd.testing import force_cleanup, netns_pins
from tests.support.cri import CRIClient, build_cri_images, container_config, cri_env, hosts_dir, pod_config
from tests.support.k8s_stream import RemoteCommand, SpdyPortForward, start_containerd_cri

pytestmark = [pytest.mark.integration, pytest.mark.root]

kubernetes = pytest.importorskip("kubernetes", reason="the dev extra installs kubernetes")
from kubernetes.client import Configuration  # noqa: E402
from kubernetes.stream import ws_client  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


HTTP_PORT = _free_port()           # our pod's httpd (host network)
THEIR_PORT = _free_port()          # containerd's pod's httpd: both pods share the host's ports
while THEIR_PORT == HTTP_PORT:
    THEIR_PORT = _free_port()
PAGE = "served-by-busybox-httpd"


def _web_pod(client: CRIClient, busybox: str, name: str, port: int = HTTP_PORT):
    cfg = pod_config(name, host_network=True)
    cfg.hostname = ""                    # runc refuses a hostname without a UTS namespace of its own
    pid = client.run_pod(cfg)
    script = f"mkdir -p /www && echo {PAGE} > /www/index.html && exec httpd -f -p 127.0.0.1:{port} -h /www"
    cid = client.create(pid, container_config("web", busybox, command=["sh", "-c", script]), cfg)
    client.start(cid)
    return pid, cid


@pytest.fixture(scope="module")
def ours(tmp_path_factory, registry):
    with cri_env(tmp_path_factory.mktemp("ours") / "cri", registry) as e:
        e.client.pull(e.images.busybox)
        pid, cid = _web_pod(e.client, e.images.busybox, "interop")
        yield e, pid, cid


def ws_url(url: str) -> str:
    return "ws" + url[len("http"):]


def _k8s_config() -> Configuration:
    cfg = Configuration()
    cfg.verify_ssl = False
    return cfg


def test_kubernetes_wsclient_exec_v5(ours):
    env, _, cid = ours
    url = env.client.Exec(cri.ExecRequest(container_id=cid, stdin=True, stdout=True, stderr=True,
                                          cmd=["sh", "-c", "echo out; echo err >&2; read x; echo got:$x; exit 5"])).url
    client = ws_client.WSClient(_k8s_config(), ws_url(url), headers=None, capture_all=True)
    try:
        assert client.subprotocol == "v5.channel.k8s.io"
        client.write_stdin("hello\n")
        client.run_forever(timeout=60)
        assert client.read_stdout() == "out\ngot:hello\n"
        assert client.read_stderr() == "err\n"
        assert client.returncode == 5
    finally:
        client.close()


def test_kubernetes_wsclient_exec_tty_v4(ours):
    env, _, cid = ours
    url = env.client.Exec(cri.ExecRequest(container_id=cid, stdin=True, stdout=True, tty=True, cmd=["sh"])).url
    client = ws_client.WSClient(_k8s_config(), ws_url(url), headers={"sec-websocket-protocol": "v4.channel.k8s.io"},
                                capture_all=True)
    try:
        assert client.subprotocol == "v4.channel.k8s.io"
        client.write_stdin("echo sum=$((40+2))\n")
        out = ""
        for _ in range(600):
            client.update(timeout=0.1)
            out += client.read_stdout() if client.peek_stdout() else ""
            if "sum=42" in out:
                break
        assert "sum=42" in out
        client.write_channel(ws_client.RESIZE_CHANNEL, json.dumps({"Width": 101, "Height": 33}))
        client.write_stdin("stty size; exit 3\n")
        client.run_forever(timeout=60)
        out += client.read_stdout()
        assert "33 101" in out
        assert client.returncode == 3
    finally:
        client.close()


def test_kubernetes_portforward(ours):
    env, pid, _ = ours
    url = env.client.PortForward(cri.PortForwardRequest(pod_sandbox_id=pid, port=[HTTP_PORT])).url
    websocket = ws_client.create_websocket(_k8s_config(), f"{ws_url(url)}?ports={HTTP_PORT}",
                                           headers={"sec-websocket-protocol": "v4.channel.k8s.io"})
    pf = ws_client.PortForward(websocket, [HTTP_PORT])
    try:
        sock = pf.socket(HTTP_PORT)
        sock.settimeout(30)
        reply = b""
        sock.sendall(b"GET /index.html HTTP/1.0\r\n\r\n")
        while chunk := sock.recv(65536):
            reply += chunk
        assert reply.split(b"\r\n")[0].endswith(b"200 OK"), reply
        assert reply.endswith(PAGE.encode() + b"\n")
        assert pf.error(HTTP_PORT) is None
        sock.close()
    finally:
        pf.close()


# -- containerd's streaming server, our SPDY client -------------------------------------------


@pytest.fixture(scope="module")
def theirs(tmp_path_factory, registry):
    images = build_cri_images(registry)
    base = tmp_path_factory.mktemp("containerd-cri")
    pins = netns_pins()
    certs = hosts_dir(base, images.registry_host)
    handle = start_containerd_cri(base / "d", images.pause, str(certs))
    client = CRIClient(handle.address)
    try:
        client.pull(images.busybox)
        pid, cid = _web_pod(client, images.busybox, f"theirs-{uuid.uuid4().hex[:6]}", THEIR_PORT)
        yield client, pid, cid
    finally:
        with pytest.MonkeyPatch.context():
            try:
                client.remove_everything()
            except grpc.RpcError:
                pass
        client.close()
        handle.stop()
        force_cleanup(base, pins)


async def test_our_spdy_client_against_containerd(theirs):
    client, pid, cid = theirs
    url = client.Exec(cri.ExecRequest(container_id=cid, cmd=["sh"], tty=True, stdin=True, stdout=True)).url
    rc = await RemoteCommand.connect(url, stdin=True, stdout=True, tty=True)
    assert rc.protocol == "v4.channel.k8s.io"
    await rc.send(b"echo sum=$((40+2))\n")
    await rc.read_until(b"sum=42")
    await rc.resize(77, 22)
    await rc.send(b"stty size\n")
    await rc.read_until(b"22 77")
    await rc.send(b"exit 3\n")
    result = await rc.wait()
    assert result.exit_code == 3, result.status

    url = client.Exec(cri.ExecRequest(container_id=cid, cmd=["sh", "-c", "echo o; echo e >&2; cat"], stdin=True,
                                      stdout=True, stderr=True)).url
    rc = await RemoteCommand.connect(url, stdin=True, stdout=True, stderr=True)
    await rc.send(b"x" * 200_000)                  # several frames, more than one window
    await rc.close_stdin()
    result = await rc.wait()
    assert result.stdout == b"o\n" + b"x" * 200_000 and result.stderr == b"e\n" and result.exit_code == 0

    url = client.PortForward(cri.PortForwardRequest(pod_sandbox_id=pid, port=[THEIR_PORT])).url
    pf = await SpdyPortForward.connect(url)
    try:
        reply = b""
        for _ in range(100):
            reply, err = await pf.request(THEIR_PORT, b"GET /index.html HTTP/1.0\r\n\r\n")
            if reply:
                break
            await asyncio.sleep(0.1)
        assert reply.endswith(PAGE.encode() + b"\n"), (reply, err)
    finally:
        await pf.aclose()


# -- kubectl (Go: client-go's SPDY and WebSocket executors) through a stand-in API server --------


DISCOVERY = {
    "/api": {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []},
    "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": []},
    "/api/v1": {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
        {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod", "verbs": ["get", "list"],
         "shortNames": ["po"]},
        {"name": "pods/exec", "singularName": "", "namespaced": True, "kind": "PodExecOptions",
         "verbs": ["create", "get"]},
        {"name": "pods/portforward", "singularName": "", "namespaced": True, "kind": "PodPortForwardOptions",
         "verbs": ["create", "get"]}]},
}
"""Legacy discovery documents (kubectl resolves ``pod/web`` through them)."""


class MiniAPIServer:
    """Just enough of an API server for ``kubectl exec`` and ``kubectl port-forward``: it
    answers ``GET …/pods/NAME`` with a running pod, and for ``…/exec`` and ``…/portforward``
    does what kubelet does — asks the CRI for a URL (``Exec`` with the query's command and
    streams, ``PortForward``) — then relays the connection, upgrade and all, to that URL."""

    def __init__(self, client: CRIClient, pod_id: str, container_id: str) -> None:
        self.client, self.pod_id, self.container_id = client, pod_id, container_id
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.port = 0
        self.seen: list[str] = []                      # request lines, for failure messages
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.ready.wait(30)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def start():
            self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
            self.port = self.server.sockets[0].getsockname()[1]
            self.ready.set()

        self.loop.run_until_complete(start())
        self.loop.run_forever()

    def close(self) -> None:
        async def stop():
            self.server.close()
            for t in asyncio.all_tasks():
                if t is not asyncio.current_task():
                    t.cancel()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    async def _handle(self, reader, writer) -> None:
        from urllib.parse import parse_qs, urlsplit

        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
                upgrade = next((ln.split(b":", 1)[1].strip().decode() for ln in head.split(b"\r\n")
                                if ln.lower().startswith(b"upgrade:")), "")
                self.seen.append(f"{method} {target}" + (f" [{upgrade}]" if upgrade else ""))
                u = urlsplit(target)
                q = parse_qs(u.query)
                doc = None
                if method == "GET" and u.path.startswith("/api/v1/namespaces/default/pods/") \
                        and u.path.count("/") == 6:
                    doc = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default"},
                           "spec": {"containers": [{"name": "web", "image": "busybox"}]},
                           "status": {"phase": "Running"}}
                elif method == "GET" and u.path in DISCOVERY:
                    doc = DISCOVERY[u.path]
                if doc is not None:
                    body = json.dumps(doc).encode()
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                                 % len(body) + body)
                    await writer.drain()
                    continue
                if u.path.endswith("/exec"):
                    flag = lambda k: q.get(k, ["false"])[0] in ("true", "1")  # noqa: E731
                    req = cri.ExecRequest(container_id=self.container_id, cmd=q.get("command", []),
                                          stdin=flag("stdin"), stdout=flag("stdout"), stderr=flag("stderr"),
                                          tty=flag("tty"))
                    url = (await asyncio.to_thread(self.client.Exec, req)).url
                elif u.path.endswith("/portforward"):
                    req = cri.PortForwardRequest(pod_sandbox_id=self.pod_id)
                    url = (await asyncio.to_thread(self.client.PortForward, req)).url
                else:
                    writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                    await writer.drain()
                    continue
                await self._relay(head, url, reader, writer)
                return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @staticmethod
    async def _relay(head: bytes, url: str, reader, writer) -> None:
        from urllib.parse import urlsplit

        u = urlsplit(url)
        up_r, up_w = await asyncio.open_connection(u.hostname, u.port)
        line, rest = head.split(b"\r\n", 1)
        method = line.split(b" ", 1)[0]               # kubelet passes POST (SPDY) and GET (WebSocket) on
        up_w.write(method + f" {u.path} HTTP/1.1\r\n".encode() + rest)

        async def pipe(src, dst):
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            finally:
                with contextlib.suppress(Exception):
                    dst.write_eof()

        try:
            await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer), return_exceptions=True)
        finally:
            up_w.close()


@pytest.fixture(scope="module")
def apiserver(ours):
    env, pid, cid = ours
    srv = MiniAPIServer(env.client, pid, cid)
    yield srv
    srv.close()


def _kubectl_bin() -> str:
    path = shutil.which("kubectl")
    if path is None:       # not in Debian 12's archive: these run where kubectl is installed
        pytest.skip("kubectl is not installed (not packaged by Debian 12; the rest of this module covers the "
                    "protocols with the kubernetes package and containerd)")
    return path


def kubectl(apiserver, tmp_path, *args, env=None, input=None, timeout=120):
    kubectl_bin = _kubectl_bin()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("")
    return subprocess.run([kubectl_bin, f"--server=http://127.0.0.1:{apiserver.port}", "-n", "default", *args],
                          env={**os.environ, "KUBECONFIG": str(kubeconfig), **(env or {})}, input=input,
                          capture_output=True, timeout=timeout)


@pytest.mark.parametrize("websockets", ["false", "true"])
def test_kubectl_exec(apiserver, tmp_path, websockets):
    """client-go's SPDY executor (websockets off) and its WebSocket v5 executor."""
    env = {"KUBECTL_REMOTE_COMMAND_WEBSOCKETS": websockets}
    r = kubectl(apiserver, tmp_path, "exec", "-i", "web", "--", "sh", "-c",
                "echo out:$(cat); echo err >&2; exit 7", env=env, input=b"from-stdin")
    assert r.stdout == b"out:from-stdin\n", (r, apiserver.seen)
    assert r.stderr.startswith(b"err\n"), r.stderr
    assert r.returncode == 7, r.stderr
    upgrades = [x.rsplit("[", 1)[1] for x in apiserver.seen if "/exec?" in x]
    assert upgrades[-1].lower() == ("websocket]" if websockets == "true" else "spdy/3.1]"), apiserver.seen
    r = kubectl(apiserver, tmp_path, "exec", "web", "--", "true", env=env)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("websockets", ["false", "true"])
def test_kubectl_port_forward(apiserver, tmp_path, websockets):
    """client-go's SPDY port-forward dialer (``kubectl port-forward``) into the pod, and its
    WebSocket one (SPDY tunnelled in a WebSocket, ``SPDY/3.1+portforward.k8s.io``)."""
    kubectl_bin = _kubectl_bin()
    local = _free_port()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("")
    proc = subprocess.Popen([kubectl_bin, f"--server=http://127.0.0.1:{apiserver.port}", "-n", "default",
                             "port-forward", "pod/web", f"{local}:{HTTP_PORT}"],
                            env={**os.environ, "KUBECONFIG": str(kubeconfig),
                                 "KUBECTL_PORT_FORWARD_WEBSOCKETS": websockets},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()                     # "Forwarding from 127.0.0.1:N -> M"
        assert b"Forwarding from" in line, (line, proc.stderr.read() if proc.poll() is not None else b"")
        for _ in range(2):                                # two connections over the one SPDY session
            with socket.create_connection(("127.0.0.1", local), timeout=30) as s:
                s.sendall(b"GET /index.html HTTP/1.0\r\n\r\n")
                reply = b""
                while chunk := s.recv(65536):
                    reply += chunk
            assert reply.endswith(PAGE.encode() + b"\n"), reply
        upgrades = [x.rsplit("[", 1)[1] for x in apiserver.seen if "/portforward" in x]
        assert upgrades[-1].lower() == ("websocket]" if websockets == "true" else "spdy/3.1]"), apiserver.seen
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
