"""An idle daemon has not loaded what only some calls need (issue 17: idle memory).

The daemon runs as usual (default configuration, temporary dirs) from a launcher that, on
``SIGUSR2``, writes the modules the process has loaded. It is asked what a client or a
kubelet asks of an idle node — Debian's ``ctr version``, ``ctr plugins ls``, and CRI
``Version`` and ``Status`` (verbose: the config, with the streaming server's address and
port) — then the list is read. Asserted: what serving needs is there, and none of the
modules that load with the first pull (the HTTP stack), the first layer applied (archives,
compressors), the first pod network (pyroute2), the first CRI call that makes a sandbox or
a container (spec generation), the first exec/attach/port-forward stream (HTTP parsing,
WebSocket, SPDY), or a third-party plugin (``importlib.metadata``). What loads, not how much
memory: ``bench/run.py`` measures the idle RSS against containerd's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import grpc

from pycontainerd.api.cri.runtime.v1 import api_pb2 as cri
from pycontainerd.api.cri.runtime.v1 import api_pb2_grpc as cri_grpc

LAUNCH = """
import json, signal, sys
out = sys.argv[1]
signal.signal(signal.SIGUSR2, lambda *_: open(out, "w").write(json.dumps(sorted(sys.modules))))
sys.argv = ["pycontainerd", *sys.argv[2:]]
from pycontainerd_cmd.daemon import main
main()
"""

LAZY = (
    "httpx", "httpcore", "rich",  # registries: the first pull
    "pycontainerd.remotes.resolver", "pycontainerd.remotes.session",
    "pycontainerd.archive", "tarfile", "zstandard",  # layers: the first Diff.Apply / Diff.Diff
    "pyroute2", "pycontainerd.cri.netns",  # the first pod network
    "pycontainerd.cri.spec", "pycontainerd.oci.opts",  # the first sandbox or container
    "pycontainerd.cri.handlers.sandbox_run", "pycontainerd.cri.handlers.container_create",
    "h11", "wsproto",  # the first exec / attach / port-forward stream
    "pycontainerd.cri.streaming.sessions", "pycontainerd.cri.streaming.spdyconn",
    "pycontainerd.cri.streaming.wsconn", "pycontainerd.cri.streaming.runners",
    "importlib.metadata", "email",  # third-party plugins: only when one is installed
)


def _loaded(modules: set[str], names) -> list[str]:
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


def test_idle_daemon_has_not_loaded_what_only_some_calls_need(daemon_factory, ctr_bin, tmp_path):
    dump = tmp_path / "modules.json"
    d = daemon_factory(start=False)
    argv = type(d).command(d)
    at = argv.index("-m")
    argv[at:at + 2] = ["-c", LAUNCH, str(dump)]
    d.command = lambda: argv
    d.start()

    for args in (("version",), ("plugins", "ls")):
        out = subprocess.run([ctr_bin, "--address", d.address, *args], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
    with grpc.insecure_channel(f"unix:{d.address}") as channel:
        runtime = cri_grpc.RuntimeServiceStub(channel)
        assert runtime.Version(cri.VersionRequest(), timeout=60).runtime_api_version == "v1"
        status = runtime.Status(cri.StatusRequest(verbose=True), timeout=60)
    config = json.loads(status.info["config"])
    assert (config["stream_server_address"], config["stream_server_port"]) == ("127.0.0.1", "0"), config

    d.signal(signal.SIGUSR2)
    deadline = time.monotonic() + 30
    while not (dump.exists() and dump.stat().st_size) and time.monotonic() < deadline:
        time.sleep(0.05)
    modules = set(json.loads(dump.read_text()))
    assert d.proc.poll() is None, d.log()

    # a booted, serving daemon: its server, the CRI plugin, the streaming server's front
    for needed in ("pycontainerd.server.grpc_server", "pycontainerd.cri.servicer", "pycontainerd.cri.service",
                   "pycontainerd.cri.streaming.server", "pycontainerd.diff.walking", "pycontainerd.images.pull",
                   "lmdb", "grpc"):
        assert needed in modules, f"{needed} not loaded: the dump is not of a booted daemon"
    assert _loaded(modules, LAZY) == [], "an idle daemon loaded modules only some calls need"
    assert os.path.exists(d.address)
