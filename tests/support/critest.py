"""A whole CRI node for Kubernetes' own clients (critest, crictl, kubelet), and critest itself.

:func:`cri_node` makes, inside a network namespace it creates and deletes:

- a ``docker-registry`` on that namespace's ``127.0.0.1:5001`` serving every image critest pulls,
  built by ``../shared/cri-tools/images/build.sh`` (tools we did not write: umoci, skopeo,
  Debian's busybox and catatonit) — once per machine and build-script version, into a cache
  folder next to the Go tools (:func:`critest_image_store`);
- a CRI runtime configured as a new user would (``kind="ours"``: pycontainerd;
  ``kind="containerd"``: Debian's containerd 1.6.20 and its CRI plugin, the reference):
  ``hosts.toml`` mirrors under the CRI ``registry.config_path`` sending gcr.io, registry.k8s.io,
  k8s.gcr.io, public.ecr.aws, localhost:5001 and 127.0.0.1:5001 to that registry; a CNI
  ``bridge`` + ``portmap`` conflist on a private subnet; ``restrict_oom_score_adj = true``
  (these hosts grant no CAP_SYS_RESOURCE); the sandbox image ``registry.k8s.io/pause:3.9``.

Clients run inside the same namespace (the registry, the streaming server and pod IPs live on
it): :func:`run_critest` does, and ``tests.support.crictl.crictl(node, ...)`` does since a
:class:`CRINode` has ``daemon.address`` and ``netns`` like a ``CRIEnv``.

Teardown (also when the test failed): every pod removed through the CRI, the runtime stopped,
its shims killed and mounts unmounted (:func:`pycontainerd.testing.force_cleanup`), the registry
stopped, the namespace deleted; the temp base removed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import ipaddress
import json
import os
import random
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import grpc

from pycontainerd.testing import start_registry
from pycontainerd.testing import force_cleanup, netns_pins
from tests.support.cri import (
    CRIClient,
    NetnsDaemon,
    bridge_conflist,
    create_test_netns,
    cri_config,
    delete_test_netns,
    traversable,
)
from tests.support.crictl import ROOT, tool, tools_dir

CRI_TOOLS_SRC = Path(os.environ.get("PYCONTAINERD_CRI_TOOLS_SRC", ROOT.parent / "shared" / "cri-tools"))
"""The image recipes (``images/build.sh``) and notes shipped to the project's machines."""

REGISTRY_PORT = 5001
MIRRORED = ("gcr.io", "registry.k8s.io", "k8s.gcr.io", "public.ecr.aws", "localhost:5001", "127.0.0.1:5001")
SANDBOX_IMAGE = "registry.k8s.io/pause:3.9"
BUSYBOX = "localhost:5001/critest/busybox:1.35"
NGINX = "localhost:5001/critest/nginx:latest"


# --------------------------------------------------------------------------------------
# the images, built once per machine


def _recipe_digest() -> str:
    h = hashlib.sha256()
    images = CRI_TOOLS_SRC / "images"
    for path in sorted(p for p in images.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(images)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def critest_image_store() -> Path:
    """A registry storage folder holding every critest image, built by ``build.sh`` the first
    time (a few minutes), then reused while the recipes are unchanged. Concurrent callers wait
    for the one building (a lock file)."""
    build = CRI_TOOLS_SRC / "images" / "build.sh"
    if not build.exists():
        raise FileNotFoundError(f"{build} is missing (set PYCONTAINERD_CRI_TOOLS_SRC to a cri-tools folder)")
    cache = tools_dir().parent / "critest-images"
    cache.mkdir(parents=True, exist_ok=True)
    store = cache / _recipe_digest()
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (store / ".complete").exists():
            return store
        shutil.rmtree(store, ignore_errors=True)
        store.mkdir()
        reg = start_registry(storage=store)       # on the host: build.sh runs `apt-get download busybox`
        try:
            out = subprocess.run(["bash", str(build)], env={**os.environ, "CRITEST_REGISTRY": reg.host},
                                 capture_output=True, text=True, timeout=1800)
        finally:
            reg.stop()
        if out.returncode != 0:
            shutil.rmtree(store, ignore_errors=True)
            raise RuntimeError(f"build.sh exited {out.returncode}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
        (store / ".complete").write_text(out.stdout)
    return store


# --------------------------------------------------------------------------------------
# the node


def mirrors(base: Path, registry: str) -> Path:
    """A ``certs.d`` tree: one ``hosts.toml`` per mirrored name, all sent to ``registry``."""
    certs = base / "certs.d"
    for name in MIRRORED:
        (certs / name).mkdir(parents=True, exist_ok=True)
        (certs / name / "hosts.toml").write_text(
            f'server = "http://{registry}"\n[host."http://{registry}"]\n  capabilities = ["pull", "resolve"]\n')
    return certs


@dataclass
class CRINode:
    """A runtime, its registry and its network namespace (see the module doc)."""

    kind: str
    base: Path
    netns: str
    subnet: str
    daemon: object                 # NetnsDaemon or tests.support.containerd.Containerd: .address, .stop()
    client: CRIClient

    @property
    def address(self) -> str:
        return self.daemon.address

    def log(self) -> str:
        path = self.base / ("daemon/daemon.log" if self.kind == "ours" else "containerd/containerd.log")
        return path.read_text(errors="replace") if path.exists() else ""

    def run(self, *argv: str, **kw) -> subprocess.CompletedProcess:
        """A command inside the node's network namespace."""
        return subprocess.run(["nsenter", f"--net={self.netns}", *argv], **kw)


def pod_pins_in(subnet: str) -> set[str]:
    """Pinned pod network namespaces (``cni-*``) with an address in ``subnet``: this node's,
    not those of other runtimes on the machine (their pods use other subnets)."""
    net = ipaddress.ip_network(subnet)
    mine = set()
    for name in netns_pins():
        if not name.startswith("cni-"):
            continue
        out = subprocess.run(["ip", "-n", name, "-4", "-o", "addr", "show"], capture_output=True, text=True).stdout
        if any(ipaddress.ip_interface(word).ip in net for line in out.splitlines()
               for word in line.split()[3:4]):
            mine.add(name)
    return mine


def _start_runtime(kind: str, base: Path, netns: str, certs: Path, subnet: str):
    conflist = bridge_conflist("pods", "cni0", subnet, str(base / "ipam"), ip_masq=True)
    if kind == "containerd":
        from tests.support.k8s_stream import start_containerd_cri

        return start_containerd_cri(base / "containerd", SANDBOX_IMAGE, str(certs), netns=netns, conflist=conflist)
    if kind != "ours":
        raise ValueError(f"unknown runtime kind {kind!r} (ours, containerd)")
    conf_dir = base / "net.d"
    conf_dir.mkdir()
    (conf_dir / "10-pods.conflist").write_text(conflist)
    cfg = base / "config.toml"
    cfg.write_text(cri_config(sandbox_image=SANDBOX_IMAGE, conf_dir=str(conf_dir), config_path=str(certs),
                              restrict_oom=True))
    return NetnsDaemon(base=base / "daemon", config=cfg, netns=netns,
                       extra_args=["--log-level", "info"]).start(timeout=60)


@contextlib.contextmanager
def cri_node(base: Path, kind: str = "ours"):
    """A :class:`CRINode` (see the module doc); everything it made is gone afterwards, and
    a runtime that left something behind (process, mount, pod netns) fails the caller."""
    store = critest_image_store()
    base.mkdir(parents=True, exist_ok=True)
    traversable(base)
    pins = frozenset(netns_pins())
    netns = create_test_netns()
    subnet = f"10.{random.randint(100, 250)}.{random.randint(0, 255)}.0/24"   # private to this node
    registry = daemon = client = None
    leftovers: list[str] = []
    try:
        registry = start_registry(storage=store, port=REGISTRY_PORT, netns=netns)
        certs = mirrors(base, registry.host)
        daemon = _start_runtime(kind, base, netns, certs, subnet)
        client = CRIClient(daemon.address)
        yield CRINode(kind, base, netns, subnet, daemon, client)
    finally:
        if client is not None:
            with contextlib.suppress(grpc.RpcError):
                client.remove_everything()
            client.close()
        if daemon is not None:
            daemon.stop()
        leftovers = force_cleanup(base, set(pins))
        if registry is not None:
            registry.stop()
        delete_test_netns(netns)
        shutil.rmtree(base, ignore_errors=True)
    assert not leftovers, f"{kind} left behind: {leftovers}"


# --------------------------------------------------------------------------------------
# critest


@dataclass
class Spec:
    name: str
    state: str                     # passed, failed, skipped, pending, panicked, timedout, ...
    seconds: float
    message: str = ""
    location: str = ""

    def reason(self) -> str:
        """The line of the failure that says why: the gRPC error when there is one."""
        lines = [line.strip() for line in self.message.strip().splitlines() if line.strip()]
        why = next((line for line in lines if line.startswith("rpc error:")), "")
        return (" / ".join(filter(None, [lines[0] if lines else "", why])))[:600]


@dataclass
class CritestResult:
    specs: list[Spec]
    seconds: float
    returncode: int
    summary_line: str              # ginkgo's own "N Passed | N Failed | ..." line
    output: str

    def count(self, *states: str) -> int:
        return sum(1 for s in self.specs if s.state in states)

    @property
    def passed(self) -> int:
        return self.count("passed")

    @property
    def failed(self) -> list[Spec]:
        return [s for s in self.specs if s.state not in ("passed", "skipped", "pending")]

    @property
    def skipped(self) -> int:
        return self.count("skipped", "pending")

    def describe(self) -> str:
        lines = [f"critest: {len(self.specs)} specs, {self.passed} passed, {len(self.failed)} failed, "
                 f"{self.skipped} skipped in {self.seconds:.0f} s (ginkgo: {self.summary_line})"]
        for s in self.failed:
            lines.append(f"  [{s.state}] {s.name}\n      {s.reason()}\n      at {s.location}")
        return "\n".join(lines)


def parse_report(report: Path) -> list[Spec]:
    """The ``It`` specs of a ginkgo ``-ginkgo.json-report`` file."""
    specs = []
    for suite in json.loads(report.read_text()):
        for r in suite.get("SpecReports") or []:
            if r.get("LeafNodeType") != "It":
                continue
            name = " ".join([*(r.get("ContainerHierarchyTexts") or []), r.get("LeafNodeText", "")])
            failure = r.get("Failure") or {}
            loc = failure.get("Location") or {}
            specs.append(Spec(name=name, state=r.get("State", ""), seconds=(r.get("RunTime") or 0) / 1e9,
                              message=failure.get("Message", ""),
                              location=f"{loc.get('FileName', '')}:{loc.get('LineNumber', '')}" if loc else ""))
    return specs


def critest_argv(node: CRINode, *args: str) -> list[str]:
    return ["nsenter", f"--net={node.netns}", tool("critest"), "--runtime-endpoint", f"unix://{node.address}",
            "--image-endpoint", f"unix://{node.address}", *args]


def run_critest(node: CRINode, *extra: str, timeout: float = 3600, log: Path | None = None) -> CritestResult:
    """Run the whole conformance suite against ``node`` (serially: ginkgo's parallel mode
    needs its CLI, which critest drives by re-executing itself; serial runs are reproducible).
    critest's output goes to ``log`` as it runs (default: inside the node's base)."""
    work = node.base / "critest"
    work.mkdir(exist_ok=True)
    images = work / "images.yaml"
    images.write_text(f"defaultTestContainerImage: {BUSYBOX}\nwebServerTestImage: {NGINX}\n")
    report = work / "report.json"
    log = log or work / "critest.log"
    t0 = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.run(critest_argv(node, "--test-images-file", str(images), "-ginkgo.no-color",
                                           "-ginkgo.json-report", str(report), *extra),
                              stdout=out, stderr=subprocess.STDOUT, text=True, timeout=timeout, cwd=work)
    seconds = time.monotonic() - t0
    output = log.read_text(errors="replace")
    summary = next((line.strip() for line in reversed(output.splitlines()) if " Passed | " in line), "")
    if not report.exists():
        raise RuntimeError(f"critest wrote no report (exit {proc.returncode}):\n{output[-5000:]}")
    return CritestResult(parse_report(report), seconds, proc.returncode, summary, output)
