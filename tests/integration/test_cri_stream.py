"""CRI Exec, Attach and PortForward through the streaming server, against a real daemon,
runc and a pod with its own network namespace (CNI bridge), driven by our SPDY/WebSocket
client (tests/support/k8s_stream.py).

The daemon runs in a network namespace of the test's (see tests/support/cri.py), so its
streaming server listens on that namespace's 127.0.0.1: the client connects from a thread
that joined it. One daemon and one pod serve the whole module (bounded time).

Covered: interactive ``sh`` on a tty (command, output, resize, ``exit 3`` → 3), stdout and
stderr kept apart without a tty (SPDY and WebSocket v5, stdin EOF), attach to a running
container (output and input), port-forward to busybox ``httpd`` in the pod (SPDY and
WebSocket), a port nobody listens on, bad / reused tokens, a removed container's token,
bad requests, and a client vanishing mid-exec (the exec process is gone from the shim and
the daemon's asyncio task count is back to its baseline).
"""

from __future__ import annotations

import asyncio
import glob
import os
import random
import time

import grpc
import pytest

from pycontainerd.api.cri.runtime.v1 import api_pb2 as cri
from pycontainerd.api.services.tasks.v1 import tasks_pb2, tasks_pb2_grpc
from pycontainerd.cri.streaming import protocol as p
from tests.support import k8s_stream
from tests.support.cri import container_config, cri_env, pod_config
from tests.support.k8s_stream import RemoteCommand, SpdyPortForward, UpgradeRefused, WsPortForward, http_get

pytestmark = [pytest.mark.integration, pytest.mark.root]

HTTP_PORT = 8080
PAGE = "hello-from-the-pod"


@pytest.fixture(scope="module")
def env(tmp_path_factory, registry, ctr_bin):
    subnet = f"10.{random.randint(200, 250)}.{random.randint(0, 255)}.0/24"
    with cri_env(tmp_path_factory.mktemp("stream") / "cri", registry, netns=True, subnet=subnet,
                 ctr=ctr_bin, debug=True) as e:  # debug: the daemon's task count for the leak checks
        yield e


@pytest.fixture(scope="module")
def pod(env):
    cfg = pod_config("stream-pod", log_dir=str(env.log_dir / "stream-pod"))
    pid = env.client.run_pod(cfg)
    script = f"mkdir -p /www && echo {PAGE} > /www/index.html && exec httpd -f -p {HTTP_PORT} -h /www"
    web = env.client.create(pid, container_config("web", env.images.busybox, command=["sh", "-c", script],
                                                  log_path="web.log"), cfg)
    env.client.start(web)
    return pid, cfg, web


@pytest.fixture(autouse=True)
def in_daemon_netns(env):
    k8s_stream.NETNS = env.netns
    yield
    k8s_stream.NETNS = ""


def exec_url(env, cid, cmd, *, tty=False, stdin=False, stdout=True, stderr=False) -> str:
    return env.client.Exec(cri.ExecRequest(container_id=cid, cmd=cmd, tty=tty, stdin=stdin, stdout=stdout,
                                           stderr=stderr)).url


def rpc_error(fn, req):
    with pytest.raises(grpc.RpcError) as err:
        fn(req)
    return err.value.code(), err.value.details()


async def test_exec_tty_interactive_shell(env, pod):
    _, _, web = pod
    url = exec_url(env, web, ["sh"], tty=True, stdin=True)
    assert url.startswith("http://127.0.0.1:") and "/exec/" in url
    rc = await RemoteCommand.connect(url, stdin=True, stdout=True, tty=True)
    assert rc.protocol == p.V4
    await rc.send(b"echo answer=$((6*7))\n")
    await rc.read_until(b"answer=42")
    await rc.resize(123, 45)
    # the resize stream and stdin are separate streams, so a `stty size` may overtake the
    # resize (kubelet has the same ordering); ask again until the new size shows
    for _ in range(60):
        await rc.send(b"stty size\n")
        try:
            await rc.read_until(b"45 123", timeout=0.5)
            break
        except TimeoutError:
            continue
    else:
        raise AssertionError(f"the tty was never resized to 45x123; output: {bytes(rc.out)!r}")
    await rc.send(b"exit 3\n")
    result = await rc.wait()
    assert result.exit_code == 3, result
    assert result.status["reason"] == "NonZeroExitCode"
    assert result.status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]


@pytest.mark.parametrize("transport", ["spdy", "ws"])
async def test_exec_separates_stdout_and_stderr(env, pod, transport):
    _, _, web = pod
    url = exec_url(env, web, ["sh", "-c", "echo to-out; echo to-err >&2; cat; echo after-eof"], stdin=True,
                   stderr=True)
    rc = await RemoteCommand.connect(url, stdin=True, stdout=True, stderr=True, transport=transport)
    await rc.send(b"piped-in ")
    await rc.close_stdin()                      # EOF reaches cat, the script goes on
    result = await rc.wait()
    assert result.stdout == b"to-out\npiped-in after-eof\n"
    assert result.stderr == b"to-err\n"
    assert result.exit_code == 0 and result.status == {"metadata": {}, "status": "Success"}


async def test_attach_reads_output_and_sends_input(env, pod):
    pid, cfg, _ = pod
    ccfg = container_config("echoer", env.images.busybox, log_path="echoer.log",
                            command=["sh", "-c", "while read line; do echo got:$line; done"])
    ccfg.stdin = True
    cid = env.client.create(pid, ccfg, cfg)
    env.client.start(cid)
    try:
        url = env.client.Attach(cri.AttachRequest(container_id=cid, stdin=True, stdout=True, stderr=True)).url
        assert "/attach/" in url
        rc = await RemoteCommand.connect(url, stdin=True, stdout=True, stderr=True)
        await rc.send(b"hello\n")
        await rc.read_until(b"got:hello\n")
        await rc.send(b"again\n")
        await rc.read_until(b"got:again\n")
        await rc.abort()                        # detaching leaves the container running
        assert env.client.status(cid).status.state == cri.CONTAINER_RUNNING
        # a second attachment, over WebSocket, with v5's stdin close: EOF ends the loop
        url = env.client.Attach(cri.AttachRequest(container_id=cid, stdin=True, stdout=True)).url
        rc = await RemoteCommand.connect(url, stdin=True, stdout=True, transport="ws")
        await rc.send(b"third\n")
        await rc.read_until(b"got:third\n")
        await rc.close_stdin()                  # not stdin_once: the container keeps its stdin
        await rc.abort()
        assert env.client.status(cid).status.state == cri.CONTAINER_RUNNING
        code, details = rpc_error(env.client.Attach, cri.AttachRequest(container_id=cid, stderr=True, tty=True))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "tty" in details
    finally:
        env.client.StopContainer(cri.StopContainerRequest(container_id=cid, timeout=0))
        env.client.RemoveContainer(cri.RemoveContainerRequest(container_id=cid))


async def test_port_forward_to_httpd_in_the_pod(env, pod):
    pid, _, _ = pod
    url = env.client.PortForward(cri.PortForwardRequest(pod_sandbox_id=pid, port=[HTTP_PORT, 9])).url
    assert "/portforward/" in url
    pf = await SpdyPortForward.connect(url)
    try:
        request = b"GET /index.html HTTP/1.0\r\nHost: localhost\r\n\r\n"
        for attempt in range(100):             # httpd may still be starting
            reply, err = await pf.request(HTTP_PORT, request)
            if reply:
                break
            await asyncio.sleep(0.1)
        assert reply.startswith(b"HTTP/1.") and b" 200 " in reply.split(b"\r\n")[0], reply
        assert reply.endswith(PAGE.encode() + b"\n")
        # a port nobody listens on: an error on its error stream, the connection lives on
        reply, err = await pf.request(9, b"x")
        assert reply == b"" and b"failed to connect to localhost:9" in err and b"refused" in err
        # a port outside the request's list
        reply, err = await pf.request(HTTP_PORT + 1, b"")
        assert b"was not requested" in err
        reply, err = await pf.request(HTTP_PORT, request)
        assert reply.endswith(PAGE.encode() + b"\n")
    finally:
        await pf.aclose()
    # the same over WebSocket, the port in the query
    url = env.client.PortForward(cri.PortForwardRequest(pod_sandbox_id=pid, port=[HTTP_PORT])).url
    ws = await WsPortForward.connect(url, [HTTP_PORT])
    try:
        await ws.send(0, b"GET /index.html HTTP/1.0\r\n\r\n")
        await asyncio.wait_for(ws.finished.wait(), 30)
        assert bytes(ws.data[0]).endswith(PAGE.encode() + b"\n"), ws.data
        assert bytes(ws.errors[0]) == b""
    finally:
        await ws.aclose()


async def test_bad_reused_and_stale_tokens(env, pod):
    _, _, web = pod
    url = exec_url(env, web, ["true"])
    base = url.rsplit("/", 2)[0]
    status, body = await http_get(f"{base}/exec/not-a-token")
    assert status == 404 and "unknown, already used or expired" in body
    status, body = await http_get(f"{base}/nothing/here")
    assert status == 404
    # GET and POST are routed (client-go's SPDY executor POSTs); other methods are not,
    # and do not use up the token
    other = exec_url(env, web, ["true"])
    status, body = await http_get(other, method="PUT")
    assert status == 405 and "GET or POST" in body
    status, body = await http_get(other, method="POST")
    assert status == 400 and "upgrade" in body
    result = await (await RemoteCommand.connect(url)).wait()
    assert result.exit_code == 0
    with pytest.raises(UpgradeRefused) as err:                  # single use
        await RemoteCommand.connect(url)
    assert err.value.status == 404 and "already used" in err.value.body
    # an exec token is not an attach token
    url = exec_url(env, web, ["true"])
    status, body = await http_get(url.replace("/exec/", "/attach/"))
    assert status == 404
    # no upgrade at all, and a SPDY protocol we do not speak
    url = exec_url(env, web, ["true"])
    status, body = await http_get(url)
    assert status == 400 and "upgrade" in body
    url = exec_url(env, web, ["true"])
    with pytest.raises(UpgradeRefused) as err:
        await RemoteCommand.connect(url, protocols=["v9.channel.k8s.io"])
    assert err.value.status == 403 and "v4.channel.k8s.io" in err.value.body


async def test_token_of_a_removed_container(env, pod):
    pid, cfg, _ = pod
    cid = env.client.create(pid, container_config("short", env.images.busybox, command=["sleep", "1000"]), cfg)
    env.client.start(cid)
    url = exec_url(env, cid, ["true"])
    env.client.StopContainer(cri.StopContainerRequest(container_id=cid, timeout=0))
    env.client.RemoveContainer(cri.RemoveContainerRequest(container_id=cid))
    with pytest.raises(UpgradeRefused) as err:
        await RemoteCommand.connect(url)
    assert err.value.status == 404 and f"container {cid!r} not found" in err.value.body


def test_rpc_validation(env, pod):
    pid, _, web = pod
    code, details = rpc_error(env.client.Exec, cri.ExecRequest(container_id="nope", cmd=["sh"], stdout=True))
    assert code == grpc.StatusCode.NOT_FOUND
    code, details = rpc_error(env.client.Exec, cri.ExecRequest(container_id=web, cmd=["sh"]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "stdin, stdout, or stderr" in details
    code, details = rpc_error(env.client.Exec, cri.ExecRequest(container_id=web, cmd=[], stdout=True))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, details = rpc_error(env.client.Exec, cri.ExecRequest(container_id=web, cmd=["sh"], tty=True, stderr=True))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, details = rpc_error(env.client.PortForward, cri.PortForwardRequest(pod_sandbox_id="nope", port=[80]))
    assert code == grpc.StatusCode.NOT_FOUND
    code, details = rpc_error(env.client.PortForward, cri.PortForwardRequest(pod_sandbox_id=pid, port=[70000]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT


def _exec_pids(env, cid) -> list[int]:
    with grpc.insecure_channel(f"unix:{env.daemon.address}") as ch:
        resp = tasks_pb2_grpc.TasksStub(ch).ListPids(tasks_pb2.ListPidsRequest(container_id=cid),
                                                     metadata=[("containerd-namespace", "k8s.io")], timeout=30)
    return [x.pid for x in resp.processes]


async def test_client_vanishing_mid_exec(env, pod):
    _, _, web = pod
    url = exec_url(env, web, ["true"])
    await (await RemoteCommand.connect(url)).wait()             # warm: everything lazily made exists
    await asyncio.sleep(0)
    baseline = await asyncio.to_thread(env.asyncio_tasks)
    pids_before = set(_exec_pids(env, web))
    for transport in ("spdy", "ws"):
        url = exec_url(env, web, ["sh", "-c", "echo started; exec sleep 1000"], stdin=True)
        rc = await RemoteCommand.connect(url, stdin=True, stdout=True, transport=transport)
        await rc.read_until(b"started")
        assert len(set(_exec_pids(env, web)) - pids_before) == 1
        await rc.abort()                                         # no FIN, no close frame
        deadline = time.monotonic() + 60
        while set(_exec_pids(env, web)) - pids_before and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert set(_exec_pids(env, web)) - pids_before == set(), "the exec process was left in the shim"
        count = await asyncio.to_thread(env.asyncio_tasks)
        while count > baseline and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            count = await asyncio.to_thread(env.asyncio_tasks)
        assert count <= baseline, f"{count - baseline} asyncio task(s) leaked in the daemon"
    leftovers = glob.glob(os.path.join(str(env.daemon.state), "**", "exec", "*-std*"), recursive=True)
    assert leftovers == [], "exec fifos left behind"
