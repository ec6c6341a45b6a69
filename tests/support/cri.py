"""Support for the CRI tests: images, a daemon configured for the CRI (optionally inside a
network namespace the test owns), a CRI client from our generated stubs, config builders,
and a teardown that leaves nothing behind even when a test failed (the cleanup is
:func:`pycontainerd.testing.force_cleanup`, shared by every daemon fixture).

Images (built once per registry, no internet): ``HOST/cri/pause:3.9`` — a static pause
program compiled here from ``tests/support/pause.c`` (entrypoint ``/pause``) — and
``HOST/cri/busybox:1`` — Debian's static busybox with every applet linked, users ``root``,
``nobody`` (65534) and ``app`` (1000, also in group ``extra`` 2000), ``Cmd ["sh"]``. Both
packaged with ``umoci`` and pushed with ``skopeo``.

Networking stays inside namespaces the tests create: a CNI test runs the daemon in its own
network namespace (``ip netns add`` + ``nsenter --net``), so the bridge, the veths' host
ends and any iptables rules the plugins add live there and vanish with it; the pods' own
namespaces are pinned by the daemon and must be gone after RemovePodSandbox.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest

from pycontainerd.api.cri.runtime.v1 import api_pb2 as cri
from pycontainerd.api.cri.runtime.v1 import api_pb2_grpc
from pycontainerd.testing import NETNS_DIR, build_image_layout, force_cleanup, netns_pins
from tests.support.daemon import Daemon
from tests.support.registry import _run, _tool

HERE = Path(__file__).resolve().parent
PAUSE_SOURCE = HERE / "pause.c"
CNI_BIN = "/usr/lib/cni"

PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "app:x:1000:1000:app:/home/app:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
)
GROUP = "root:x:0:\napp:x:1000:\nextra:x:2000:app\nnogroup:x:65534:\n"


@dataclass(frozen=True)
class CRIImages:
    registry_host: str
    pause: str
    busybox: str


_built: dict[str, CRIImages] = {}


def _umoci_image(work: Path, tag: str, fill, config: list[str]) -> Path:
    return build_image_layout(work / f"layout-{tag}", tag, fill, config)


def build_cri_images(registry) -> CRIImages:
    """Build and push the pause and busybox images (cached per registry)."""
    if registry.host in _built:
        return _built[registry.host]
    gcc, skopeo = _tool("gcc", "gcc"), _tool("skopeo", "skopeo")
    busybox = Path("/bin/busybox")
    if not busybox.exists():
        pytest.fail("/bin/busybox is missing: apt-get install busybox-static", pytrace=False)
    work = Path(tempfile.mkdtemp(prefix="pcd-cri-images-"))
    try:
        pause_bin = work / "pause"
        _run(gcc, "-static", "-O2", "-o", str(pause_bin), str(PAUSE_SOURCE))

        def fill_pause(rootfs: Path) -> None:
            shutil.copy2(pause_bin, rootfs / "pause")
            os.chmod(rootfs / "pause", 0o755)

        def fill_busybox(rootfs: Path) -> None:
            for d in ("bin", "etc", "tmp", "home/app", "root"):
                (rootfs / d).mkdir(parents=True, exist_ok=True)
            os.chmod(rootfs / "tmp", 0o1777)
            shutil.copy2(busybox, rootfs / "bin" / "busybox")
            os.chmod(rootfs / "bin" / "busybox", 0o755)
            applets = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, check=True).stdout
            for applet in sorted(set(applets.split())):
                if applet and applet != "busybox" and "/" not in applet:
                    with contextlib.suppress(FileExistsError):
                        os.symlink("busybox", rootfs / "bin" / applet)
            (rootfs / "etc" / "passwd").write_text(PASSWD)
            (rootfs / "etc" / "group").write_text(GROUP)
            os.chown(rootfs / "home" / "app", 1000, 1000)

        layouts = {
            "pause": _umoci_image(work, "pause", fill_pause, ["--config.entrypoint", "/pause"]),
            "busybox": _umoci_image(work, "busybox", fill_busybox,
                                    ["--config.cmd", "sh", "--config.env", "PATH=/bin:/usr/bin:/sbin:/usr/sbin",
                                     "--config.stopsignal", "SIGTERM"]),
        }
        refs = {"pause": f"{registry.host}/cri/pause:3.9", "busybox": f"{registry.host}/cri/busybox:1"}
        for name, layout in layouts.items():
            _run(skopeo, "copy", "--quiet", "--dest-tls-verify=false", f"oci:{layout}:{name}",
                 f"docker://{refs[name]}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    images = CRIImages(registry.host, refs["pause"], refs["busybox"])
    _built[registry.host] = images
    return images


# --------------------------------------------------------------------------------------
# daemon


def cri_config(*, sandbox_image: str, conf_dir: str, bin_dir: str = CNI_BIN, config_path: str = "",
               restrict_oom: bool = False, max_line: int = 16384, extra: str = "") -> str:
    return (
        "version = 2\n"
        '[plugins."io.containerd.grpc.v1.cri"]\n'
        f'sandbox_image = "{sandbox_image}"\n'
        f"restrict_oom_score_adj = {'true' if restrict_oom else 'false'}\n"
        f"max_container_log_line_size = {max_line}\n"
        '[plugins."io.containerd.grpc.v1.cri".cni]\n'
        f'bin_dir = "{bin_dir}"\n'
        f'conf_dir = "{conf_dir}"\n'
        '[plugins."io.containerd.grpc.v1.cri".registry]\n'
        f'config_path = "{config_path}"\n'
        + extra
    )


def hosts_dir(base: Path, registry_host: str) -> Path:
    """A ``certs.d``-style dir sending ``registry_host`` over plain HTTP (hosts.toml)."""
    d = base / "certs.d"
    host = d / registry_host
    host.mkdir(parents=True, exist_ok=True)
    (host / "hosts.toml").write_text(f'server = "http://{registry_host}"\n[host."http://{registry_host}"]\n'
                                     '  capabilities = ["pull", "resolve"]\n')
    return d


@dataclass
class NetnsDaemon(Daemon):
    """A daemon started inside the network namespace pinned at ``netns`` (if set)."""

    netns: str = ""

    def command(self) -> list[str]:
        cmd = super().command()
        return ["nsenter", f"--net={self.netns}", *cmd] if self.netns else cmd


def traversable(path: Path) -> None:
    """Let every directory from ``/`` down to ``path`` be searched by anyone (``+x``), as
    ``/run`` and ``/var/lib`` are on a node: a pod with its own user namespace runs as a host
    uid that must reach its bundle's ``rootfs`` (pytest and ``mkdtemp`` make 0700 dirs)."""
    for d in [path, *path.parents]:
        mode = d.stat().st_mode
        if mode & 0o011 != 0o011:
            d.chmod(mode | 0o011)


@contextlib.contextmanager
def reachable_base(prefix: str):
    """A temp directory under ``/var/tmp`` that every uid can reach (:func:`traversable`),
    removed afterwards: pytest's own tree will not do, each pytest session on the machine
    makes its ``pytest-of-<user>`` 0700 again."""
    base = Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp"))
    try:
        traversable(base)
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def create_test_netns() -> str:
    name = f"pcd-cri-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    return os.path.join(NETNS_DIR, name)


def delete_test_netns(path: str) -> None:
    subprocess.run(["ip", "netns", "del", os.path.basename(path)], capture_output=True)


# --------------------------------------------------------------------------------------
# client


class CRIClient:
    """Our CRI client: the generated ``runtime.v1`` stubs on the daemon's socket."""

    def __init__(self, address: str, timeout: float = 120.0, max_receive: int | None = None) -> None:
        """``max_receive``: the largest reply taken, in bytes (gRPC's default: 4 MiB)."""
        opts = [("grpc.max_receive_message_length", max_receive)] if max_receive else []
        self.channel = grpc.insecure_channel(f"unix:{address}", options=opts)
        self.runtime = api_pb2_grpc.RuntimeServiceStub(self.channel)
        self.images = api_pb2_grpc.ImageServiceStub(self.channel)
        self.timeout = timeout

    def close(self) -> None:
        self.channel.close()

    def __getattr__(self, name: str):
        for stub in (self.runtime, self.images):
            fn = getattr(stub, name, None)
            if fn is not None:
                def call(request, _fn=fn, **kw):
                    kw.setdefault("timeout", self.timeout)
                    return _fn(request, **kw)
                return call
        raise AttributeError(name)

    # shortcuts
    def pull(self, ref: str, auth: cri.AuthConfig | None = None) -> str:
        req = cri.PullImageRequest(image=cri.ImageSpec(image=ref))
        if auth is not None:
            req.auth.CopyFrom(auth)
        return self.PullImage(req).image_ref

    def run_pod(self, config: cri.PodSandboxConfig, handler: str = "") -> str:
        return self.RunPodSandbox(cri.RunPodSandboxRequest(config=config, runtime_handler=handler)).pod_sandbox_id

    def create(self, pod_id: str, config: cri.ContainerConfig, pod_config: cri.PodSandboxConfig) -> str:
        return self.CreateContainer(cri.CreateContainerRequest(
            pod_sandbox_id=pod_id, config=config, sandbox_config=pod_config)).container_id

    def start(self, cid: str) -> None:
        self.StartContainer(cri.StartContainerRequest(container_id=cid))

    def exec(self, cid: str, *cmd: str, timeout: int = 0) -> cri.ExecSyncResponse:
        return self.ExecSync(cri.ExecSyncRequest(container_id=cid, cmd=list(cmd), timeout=timeout))

    def status(self, cid: str, verbose: bool = False) -> cri.ContainerStatusResponse:
        return self.ContainerStatus(cri.ContainerStatusRequest(container_id=cid, verbose=verbose))

    def pod_status(self, pid: str, verbose: bool = False) -> cri.PodSandboxStatusResponse:
        return self.PodSandboxStatus(cri.PodSandboxStatusRequest(pod_sandbox_id=pid, verbose=verbose))

    def pid(self, cid: str) -> int:
        """The host pid of a container's process (ContainerStatus verbose info)."""
        return json.loads(self.status(cid, verbose=True).info["info"])["pid"]

    def wait_state(self, cid: str, state: int, timeout: float = 30.0) -> cri.ContainerStatus:
        deadline = time.monotonic() + timeout
        while True:
            st = self.status(cid).status
            if st.state == state or time.monotonic() > deadline:
                return st
            time.sleep(0.05)

    def remove_everything(self) -> None:
        for pod in self.ListPodSandbox(cri.ListPodSandboxRequest()).items:
            with contextlib.suppress(grpc.RpcError):
                self.StopPodSandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pod.id))
            with contextlib.suppress(grpc.RpcError):
                self.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod.id))


def pod_config(name: str, *, uid: str | None = None, namespace: str = "cri-test", hostname: str = "",
               log_dir: str = "", labels: dict | None = None, annotations: dict | None = None,
               dns: cri.DNSConfig | None = None, host_network: bool = False, privileged: bool = False,
               port_mappings=(), attempt: int = 0) -> cri.PodSandboxConfig:
    cfg = cri.PodSandboxConfig(
        metadata=cri.PodSandboxMetadata(name=name, uid=uid or uuid.uuid4().hex, namespace=namespace,
                                        attempt=attempt),
        hostname=hostname or name, log_directory=log_dir, labels=labels or {}, annotations=annotations or {},
        port_mappings=list(port_mappings))
    if dns is not None:
        cfg.dns_config.CopyFrom(dns)
    sc = cfg.linux.security_context
    sc.privileged = privileged
    if host_network:
        sc.namespace_options.network = cri.NODE
    sc.namespace_options.pid = cri.CONTAINER
    return cfg


def container_config(name: str, image: str, *, command=(), args=(), log_path: str = "", labels=None,
                     annotations=None, envs=None, mounts=(), working_dir: str = "", tty: bool = False,
                     attempt: int = 0) -> cri.ContainerConfig:
    cfg = cri.ContainerConfig(
        metadata=cri.ContainerMetadata(name=name, attempt=attempt), image=cri.ImageSpec(image=image),
        command=list(command), args=list(args), log_path=log_path, labels=labels or {},
        annotations=annotations or {}, envs=[cri.KeyValue(key=k, value=v) for k, v in (envs or {}).items()],
        mounts=list(mounts), working_dir=working_dir, tty=tty)
    cfg.linux.security_context.namespace_options.pid = cri.CONTAINER
    return cfg


def bridge_conflist(name: str, bridge: str, subnet: str, data_dir: str, *, portmap: bool = True,
                    ip_masq: bool = False) -> str:
    import json

    plugins = [
        {"type": "bridge", "bridge": bridge, "isGateway": True, "ipMasq": ip_masq, "hairpinMode": True,
         "ipam": {"type": "host-local", "dataDir": data_dir, "ranges": [[{"subnet": subnet}]],
                  "routes": [{"dst": "0.0.0.0/0"}]}},
    ]
    if portmap:
        plugins.append({"type": "portmap", "capabilities": {"portMappings": True}})
    return json.dumps({"cniVersion": "1.0.0", "name": name, "plugins": plugins}, indent=1)


# --------------------------------------------------------------------------------------
# a whole environment


@dataclass
class CRIEnv:
    base: Path
    daemon: NetnsDaemon
    client: CRIClient
    images: CRIImages
    conf_dir: Path
    log_dir: Path
    netns: str
    subnet: str = ""
    pins_before: frozenset = frozenset()
    debug_socket: str = ""

    def asyncio_tasks(self) -> int:
        """How many asyncio tasks the daemon runs now, from the stack dump of its debug
        endpoint (``cri_env(debug=True)``), as an operator would read it (leak checks)."""
        with httpx.Client(transport=httpx.HTTPTransport(uds=self.debug_socket), timeout=30) as http:
            resp = http.get("http://localhost/debug/stacks", headers={"connection": "close"})
        resp.raise_for_status()
        found = re.search(r"^=== asyncio tasks \((\d+)\) ===$", resp.text, re.M)
        assert found is not None, resp.text[:200]
        return int(found.group(1))

    def containerd_images(self) -> dict[str, dict[str, str]]:
        """Image names → labels in namespace k8s.io, through containerd's Images API."""
        from pycontainerd.api.services.images.v1 import images_pb2, images_pb2_grpc

        with grpc.insecure_channel(f"unix:{self.daemon.address}") as ch:
            resp = images_pb2_grpc.ImagesStub(ch).List(images_pb2.ListImagesRequest(),
                                                       metadata=[("containerd-namespace", "k8s.io")], timeout=30)
        return {i.name: dict(i.labels) for i in resp.images}

    def containerd_containers(self) -> dict[str, dict[str, str]]:
        from pycontainerd.api.services.containers.v1 import (
            containers_pb2,
            containers_pb2_grpc,
        )

        with grpc.insecure_channel(f"unix:{self.daemon.address}") as ch:
            resp = containers_pb2_grpc.ContainersStub(ch).List(
                containers_pb2.ListContainersRequest(), metadata=[("containerd-namespace", "k8s.io")], timeout=30)
        return {c.id: dict(c.labels) for c in resp.containers}

    def restart(self) -> None:
        self.client.close()
        self.daemon.stop()
        self.daemon.start()
        self.client = CRIClient(self.daemon.address)


def ctr_pull(ctr: str, address: str, ref: str) -> None:
    """Pull ``ref`` into namespace k8s.io with Debian's ctr (from the host's network)."""
    subprocess.run([ctr, "--address", address, "--connect-timeout", "5s", "-n", "k8s.io", "images", "pull",
                    "--plain-http", ref], check=True, capture_output=True, timeout=300)


def copy_image(src_ref: str, dst_ref: str, dest_creds: str | None = None) -> None:
    skopeo = _tool("skopeo", "skopeo")
    args = [skopeo, "copy", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false"]
    if dest_creds:
        args += ["--dest-creds", dest_creds]
    _run(*args, f"docker://{src_ref}", f"docker://{dst_ref}")


@contextlib.contextmanager
def cri_env(base: Path, registry, *, netns: bool = False, subnet: str = "", ctr: str | None = None,
            config_path: str = "", extra: str = "", restrict_oom: bool = False, max_line: int = 16384,
            bin_dir: str = CNI_BIN, root_tmpfs: int = 0, pull_busybox: bool = False, debug: bool = False):
    """A daemon configured for the CRI and our client (``pull_busybox``: the busybox image
    pulled through the CRI first). With ``netns`` the daemon runs in a
    network namespace of its own and gets a CNI bridge network on ``subnet`` (images are
    pre-pulled with ``ctr`` from the host's network, since the registry is on its loopback).
    With ``root_tmpfs`` the daemon's ``--root`` is a tmpfs of that many bytes (a small disk;
    grow it with ``mount -o remount,size=``). With ``debug`` the daemon serves its debug
    endpoint on ``<base>/debug.sock`` (:meth:`CRIEnv.asyncio_tasks`). Teardown removes every pod through the CRI,
    stops the daemon and fails the test if anything (process, mount, pinned netns) was left
    behind."""
    pins = frozenset(netns_pins())
    images = build_cri_images(registry)
    conf_dir = base / "net.d"
    conf_dir.mkdir(parents=True)
    log_dir = base / "logs"
    tns = create_test_netns() if netns else ""
    if subnet:
        (conf_dir / "10-pods.conflist").write_text(
            bridge_conflist("pods", f"pcd{uuid.uuid4().hex[:8]}", subnet, str(base / "ipam")))
    cfg = base / "config.toml"
    debug_socket = str(base / "debug.sock") if debug else ""
    if debug:
        extra += f'\n[debug]\naddress = "{debug_socket}"\n'
    cfg.write_text(cri_config(sandbox_image=images.pause, conf_dir=str(conf_dir), bin_dir=bin_dir,
                              config_path=config_path, extra=extra, restrict_oom=restrict_oom, max_line=max_line))
    daemon = NetnsDaemon(base=base / "daemon", config=cfg, netns=tns)
    client = None
    env = None
    leftovers: list[str] = []
    try:
        if root_tmpfs:
            daemon.root.mkdir(parents=True)
            subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={root_tmpfs},mode=0711", "pcd-cri-root",
                            str(daemon.root)], check=True)
        daemon.start()
        if netns:
            assert ctr is not None, "a daemon in its own netns needs ctr to pre-pull images"
            for ref in (images.pause, images.busybox):
                ctr_pull(ctr, daemon.address, ref)
        client = CRIClient(daemon.address)
        env = CRIEnv(base, daemon, client, images, conf_dir, log_dir, tns, subnet, pins, debug_socket)
        if pull_busybox:
            client.pull(images.busybox)
        yield env
    finally:
        if env is not None:
            client = env.client
        if client is not None:
            with contextlib.suppress(grpc.RpcError):
                client.remove_everything()
            client.close()
        daemon.stop()
        leftovers = force_cleanup(base, set(pins))
        if root_tmpfs:  # the test's own mount, unmounted last by force_cleanup
            leftovers = [x for x in leftovers if x != f"mount {daemon.root}"]
        if tns:
            delete_test_netns(tns)
        shutil.rmtree(base, ignore_errors=True)
    assert not leftovers, f"left behind after the test: {leftovers}"
