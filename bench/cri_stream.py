"""Benchmark: the CRI streaming server, pycontainerd vs Debian containerd's CRI plugin.

    python bench/cri_stream.py            # 40 execs, 5 × 64 MiB port-forward reads per side
    python bench/cri_stream.py --quick    # 10 execs, 3 × 16 MiB

Both daemons run their CRI plugin on temp roots with one host-network pod each (busybox
``httpd`` serving a file of zeros on a free loopback port), pulling from a local registry.
Both are driven by the same client — ours, tests/support/k8s_stream.py, SPDY/3.1 with
remote command v4 (what kubelet and crictl speak) — so the figures compare the servers:

- exec round trip: CRI ``Exec`` (``true``, stdout) → connect to the URL → SPDY upgrade and
  streams → the process runs and exits → the v4 status read back; median of N, ms;
- port-forward throughput: ``PortForward`` → one SPDY connection → an HTTP GET of the file
  through a data stream; MiB/s of the body, median of the reads.

The same two figures through Kubernetes' ``crictl`` (client-go: the SPDY executor, the
SPDY port-forward dialer; built by ``.ci/go-tools``), so both servers also face the same
third-party client:

- ``crictl exec CID true``: the whole command, process start of crictl included (the same
  constant on both sides);
- ``crictl port-forward POD :PORT`` running, each sample one HTTP GET of the file over a new
  TCP connection to its local port (a new stream pair in its one SPDY session).

``--no-crictl`` leaves those out (when crictl is not built).

Samples of the two sides alternate (ABBA…); only the ratios mean anything (ANCHORS.md).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import time
import uuid

from harness import Bench, Side, base_parser

from pycontainerd.api.cri.runtime.v1 import api_pb2 as cri
from tests.support.cri import CRIClient, build_cri_images, container_config, cri_config, hosts_dir, pod_config
from tests.support.crictl import crictl_argv
from tests.support.daemon import Daemon
from tests.support.k8s_stream import RemoteCommand, SpdyPortForward, start_containerd_cri

MiB = 1 << 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CRISide:
    """A side of the bench with its CRI client, pod and web container."""

    def __init__(self, side: Side, images, file_mib: int) -> None:
        self.side = side
        self.name = side.name
        self.pf: subprocess.Popen | None = None         # crictl port-forward, while measured
        self.pf_local = 0
        self.client = CRIClient(side.address)
        self.client.pull(images.busybox)
        self.logs = side.base / "pod-logs"
        cfg = pod_config(f"bench-{uuid.uuid4().hex[:6]}", host_network=True, log_dir=str(self.logs))
        cfg.hostname = ""
        self.pod = self.client.run_pod(cfg)
        self.port = free_port()
        script = (f"mkdir -p /www && dd if=/dev/zero of=/www/blob bs=1048576 count={file_mib} && "
                  f"exec httpd -f -p 127.0.0.1:{self.port} -h /www")
        self.web = self.client.create(self.pod, container_config("web", images.busybox, command=["sh", "-c", script],
                                                                 log_path="web.log"), cfg)
        self.client.start(self.web)
        st = self.client.wait_state(self.web, cri.CONTAINER_EXITED, timeout=1.0)
        if st.state != cri.CONTAINER_RUNNING:
            raise RuntimeError(f"[{self.name}] web container {cri.ContainerState.Name(st.state)}: exit {st.exit_code} "
                               f"{st.reason} {st.message}; log: {(self.logs / 'web.log').read_text(errors='replace')[-2000:]}")

    async def exec_true(self) -> float:
        t0 = time.perf_counter()
        url = self.client.Exec(cri.ExecRequest(container_id=self.web, cmd=["true"], stdout=True)).url
        result = await (await RemoteCommand.connect(url)).wait()
        dt = time.perf_counter() - t0
        if result.exit_code != 0:
            raise RuntimeError(f"[{self.name}] exec true: {result.status}")
        return dt

    async def fetch(self, size: int) -> float:
        """MiB/s of one GET of the blob through a port-forward."""
        url = self.client.PortForward(cri.PortForwardRequest(pod_sandbox_id=self.pod, port=[self.port])).url
        pf = await SpdyPortForward.connect(url)
        try:
            request = f"GET /blob HTTP/1.0\r\nHost: 127.0.0.1:{self.port}\r\n\r\n".encode()
            for _ in range(100):                 # httpd may still be writing the file / starting
                t0 = time.perf_counter()
                reply, err = await pf.request(self.port, request, timeout=600)
                dt = time.perf_counter() - t0
                head, _, body = reply.partition(b"\r\n\r\n")
                if len(body) == size:
                    return size / MiB / dt
                await asyncio.sleep(0.2)
            raise RuntimeError(f"[{self.name}] port-forward: got {len(reply)} bytes, error {err!r}")
        finally:
            await pf.aclose()

    # -- through crictl ------------------------------------------------------------------

    def crictl_exec_true(self) -> float:
        t0 = time.perf_counter()
        proc = subprocess.run([*crictl_argv(self.side.address), "exec", self.web, "true"], capture_output=True,
                              text=True, timeout=120)
        dt = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"[{self.name}] crictl exec true: exit {proc.returncode}: {proc.stderr}")
        return dt

    def start_crictl_port_forward(self) -> None:
        self.pf = subprocess.Popen([*crictl_argv(self.side.address), "port-forward", self.pod, f":{self.port}"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        line = self.pf.stdout.readline().decode()
        m = re.match(r"Forwarding from 127\.0\.0\.1:(\d+) ", line)
        if m is None:
            self.stop_crictl_port_forward()
            raise RuntimeError(f"[{self.name}] crictl port-forward: {line!r}")
        self.pf_local = int(m.group(1))

    def crictl_fetch(self, size: int) -> float:
        """MiB/s of one GET of the blob through crictl's local port."""
        t0 = time.perf_counter()
        got = 0
        with socket.create_connection(("127.0.0.1", self.pf_local), timeout=600) as s:
            s.sendall(f"GET /blob HTTP/1.0\r\nHost: 127.0.0.1:{self.port}\r\n\r\n".encode())
            head = b""
            while chunk := s.recv(1 << 20):
                if not head:
                    head, _, chunk = chunk.partition(b"\r\n\r\n")
                got += len(chunk)
        dt = time.perf_counter() - t0
        if got != size:
            raise RuntimeError(f"[{self.name}] crictl port-forward: got {got} of {size} bytes")
        return size / MiB / dt

    def stop_crictl_port_forward(self) -> None:
        pf, self.pf = self.pf, None
        if pf is not None:
            if pf.poll() is None:
                os.killpg(pf.pid, signal.SIGTERM)
                pf.wait(10)
            pf.stdout.close()
            pf.stderr.close()

    def close(self) -> None:
        self.stop_crictl_port_forward()
        try:
            self.client.remove_everything()
        finally:
            self.client.close()


async def measure(b: Bench, ours: CRISide, theirs: CRISide, n_exec: int, n_fetch: int, size: int) -> None:
    for side in (ours, theirs):                  # warm both (lazy connections, page cache)
        await side.exec_true()
        await side.fetch(size)
    for _, s in b.alternate(ours, theirs, n_exec):
        b.sample("exec round trip (Exec + SPDY + `true`)", s.name, await s.exec_true())
    for _, s in b.alternate(ours, theirs, n_fetch):
        b.sample("port-forward throughput", s.name, await s.fetch(size))


CRICTL_EXEC = "crictl exec `true`"
CRICTL_PF = "crictl port-forward throughput"


def measure_crictl(b: Bench, ours: CRISide, theirs: CRISide, n_exec: int, n_fetch: int, size: int) -> None:
    for side in (ours, theirs):
        side.crictl_exec_true()
        side.start_crictl_port_forward()
        side.crictl_fetch(size)
    for _, s in b.alternate(ours, theirs, n_exec):
        b.sample(CRICTL_EXEC, s.name, s.crictl_exec_true())
    for _, s in b.alternate(ours, theirs, n_fetch):
        b.sample(CRICTL_PF, s.name, s.crictl_fetch(size))


def main() -> None:
    ap = base_parser(__doc__)
    ap.add_argument("-n", type=int, default=0, help="exec round trips per side")
    ap.add_argument("--no-crictl", action="store_true", help="leave out the figures through crictl")
    args = ap.parse_args()
    with Bench("cri_stream", args) as b:
        n_exec = args.n or (10 if b.quick else 40)
        n_fetch = 3 if b.quick else 5
        file_mib = 16 if b.quick else 64
        images = build_cri_images(b.registry)
        certs = hosts_dir(b.base, images.registry_host)
        conf_dir = b.base / "net.d"
        conf_dir.mkdir()
        cfg = b.base / "ours-config.toml"
        cfg.write_text(cri_config(sandbox_image=images.pause, conf_dir=str(conf_dir), config_path=str(certs),
                                  restrict_oom=True))
        base = b.base / "ours"
        d = Daemon(base=base, config=cfg, extra_args=["--log-level", "info"])
        d.start(timeout=60)
        ours_side = Side("ours", base, d, namespace="k8s.io")
        b.sides.append(ours_side)
        cbase = b.base / "containerd"
        c = start_containerd_cri(cbase, images.pause, str(certs))
        theirs_side = Side("containerd", cbase, c, namespace="k8s.io")
        b.sides.append(theirs_side)
        ours = theirs = None
        try:
            ours = CRISide(ours_side, images, file_mib)
            theirs = CRISide(theirs_side, images, file_mib)
            asyncio.run(measure(b, ours, theirs, n_exec, n_fetch, file_mib * MiB))
            if not args.no_crictl:
                measure_crictl(b, ours, theirs, n_exec, n_fetch, file_mib * MiB)
        finally:
            for s in (ours, theirs):
                if s is not None:
                    s.close()
        b.row_from_samples("exec round trip (Exec + SPDY + `true`)", "ms", scale=1000)
        r = b.row_from_samples("port-forward throughput", "MiB/s", note=f"GET of {file_mib} MiB")
        r.lower_is_better = False
        if not args.no_crictl:
            b.row_from_samples(CRICTL_EXEC, "ms", scale=1000, note="the whole crictl command")
            r = b.row_from_samples(CRICTL_PF, "MiB/s", note=f"GET of {file_mib} MiB via crictl's local port")
            r.lower_is_better = False
        b.extra["client"] = "tests/support/k8s_stream.py (SPDY/3.1, v4.channel.k8s.io / portforward.k8s.io)"
        b.report()


if __name__ == "__main__":
    main()
