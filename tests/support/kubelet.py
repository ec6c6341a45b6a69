"""A real kubelet (Kubernetes' own, built by ``.ci/go-tools``) in standalone mode on a
:class:`tests.support.cri.CRIEnv`'s daemon: no API server, static pods from a manifest folder.

Everything it touches is the test's:

- it runs in the daemon's network namespace (``nsenter --net``), so its server and its health
  port live there (``makeIPTablesUtilChains`` is off: it makes no iptables chains);
- it runs in a mount namespace of its own (``unshare --mount --propagation slave``: it still
  sees the daemon's mounts come and go) where ``/var/log`` and ``/var/lib`` are empty tmpfs
  (kubelet hard-codes its ``/var/log/containers`` symlinks and its device-plugin socket
  ``/var/lib/kubelet/device-plugins/kubelet.sock``, whatever its root) and the six kernel
  tunables kubelet insists on (``vm.overcommit_memory=1``, ``kernel.panic=10``, ...) are
  files holding the values it wants: with ``protectKernelDefaults`` it checks them and never
  writes the host's;
- its root, cert, volume-plugin, manifest and pod-log folders (``podLogsDir``) are under the
  test's temporary base;
- its ``cgroupRoot`` is a cgroup of the test's own, ``/pcd-kubelet-<random>`` in every v1
  hierarchy: kubelet makes its ``kubepods`` QoS tree and a cgroup per pod there (which the
  runtime's containers go under), and no other kubelet on the machine sees or cleans them;
  :meth:`Kubelet.remove_cgroups` removes the tree. ``oomScoreAdj: 0`` (these machines grant
  no CAP_SYS_RESOURCE), no eviction thresholds, no image GC (the pods' netns cannot reach the
  registry to pull again).

The sync loops are tuned down (``syncFrequency``, ``fileCheckFrequency``, node status). The
crash-loop back-off keeps its defaults (10 s, doubling): a pod worker whose sync failed is
retried after a fixed 10-15 s anyway, so a shorter back-off would not show.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

from tests.support.crictl import crictl_json, tool, wait_for
from tests.support.procs import terminate

NODE = "pcd-node"
KERNEL_TUNABLES = {                 # what kubelet's container manager checks (setupKernelTunables)
    "vm/overcommit_memory": 1,
    "vm/panic_on_oom": 0,
    "kernel/panic": 10,
    "kernel/panic_on_oops": 1,
    "kernel/keys/root_maxkeys": 1000000,
    "kernel/keys/root_maxbytes": 25000000,
}
# mounts the kubelet's own view needs; "$@" is the kubelet command line
_WRAPPER = """set -e
for d in /var/log /var/lib; do mount -t tmpfs -o mode=0755 kubelet-private "$d"; done
for t in {tunables}; do mount --bind "$PCD_TUNABLES/$(echo $t | tr / .)" /proc/sys/$t; done
exec "$@"
"""


def cgroup_hierarchies(*, unified: bool = False) -> list[Path]:
    """The cgroup v1 hierarchies mounted under /sys/fs/cgroup (kubelet's cgroupfs driver runs
    on v1 here), and with ``unified`` the hybrid v2 mount too (where kubelet's cgroup library
    mirrors the tree it makes)."""
    return [p for p in Path("/sys/fs/cgroup").iterdir() if p.is_dir() and (unified or p.name != "unified")
            and (p / "cgroup.procs").exists()]


class Kubelet:
    """One kubelet on ``env``'s daemon; :meth:`start`, :meth:`stop`, static pods by name."""

    def __init__(self, base: Path, env, *, server_port: int = 10250, healthz_port: int = 10248) -> None:
        self.base = base
        self.env = env
        self.root = base / "root"
        self.manifests = base / "manifests"
        self.pod_logs = base / "pod-logs"
        self.tunables = base / "tunables"
        self.config = base / "kubelet-config.json"
        self.resolv_conf = base / "resolv.conf"
        self.log_path = base / "kubelet.log"
        self.server_port = server_port
        self.healthz_port = healthz_port
        self.cgroup_root = f"/pcd-kubelet-{uuid.uuid4().hex[:8]}"
        self.proc: subprocess.Popen | None = None

    # -- configuration ------------------------------------------------------------------------

    def configuration(self) -> dict:
        return {
            "kind": "KubeletConfiguration",
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "containerRuntimeEndpoint": f"unix://{self.env.daemon.address}",
            "imageServiceEndpoint": f"unix://{self.env.daemon.address}",
            "staticPodPath": str(self.manifests),
            "podLogsDir": str(self.pod_logs),
            "resolvConf": str(self.resolv_conf),
            "volumePluginDir": str(self.base / "volume-plugins"),
            "failCgroupV1": False,
            "cgroupDriver": "cgroupfs",
            "cgroupsPerQOS": True,
            "cgroupRoot": self.cgroup_root,
            "failSwapOn": False,
            "protectKernelDefaults": True,
            "makeIPTablesUtilChains": False,
            "oomScoreAdj": 0,
            "enableServer": True,
            "address": "127.0.0.1",
            "port": self.server_port,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": self.healthz_port,
            "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
            "authorization": {"mode": "AlwaysAllow"},
            "evictionHard": {},
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "syncFrequency": "2s",
            "fileCheckFrequency": "1s",
            "nodeStatusUpdateFrequency": "2s",
            "nodeStatusReportFrequency": "10s",
            "runtimeRequestTimeout": "1m",
        }

    def _prepare(self) -> None:
        for d in (self.root, self.manifests, self.pod_logs, self.tunables):
            d.mkdir(parents=True, exist_ok=True)
        for hierarchy in cgroup_hierarchies():
            (hierarchy / self.cgroup_root.lstrip("/")).mkdir()
        for name, value in KERNEL_TUNABLES.items():
            (self.tunables / name.replace("/", ".")).write_text(f"{value}\n")
        self.resolv_conf.write_text("nameserver 127.0.0.53\nsearch pcd.test\noptions ndots:2\n")
        self.config.write_text(json.dumps(self.configuration(), indent=1))

    def command(self) -> list[str]:
        wrapper = _WRAPPER.format(tunables=" ".join(KERNEL_TUNABLES))
        kubelet = [tool("kubelet"), f"--config={self.config}", f"--root-dir={self.root}",
                   f"--cert-dir={self.base / 'pki'}", f"--hostname-override={NODE}", "--v=2"]
        argv = ["unshare", "--mount", "--propagation", "slave", "sh", "-c", wrapper, "kubelet-wrapper", *kubelet]
        if self.env.netns:
            argv = ["nsenter", f"--net={self.env.netns}", *argv]
        return argv

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> Kubelet:
        self._prepare()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                         env={**os.environ, "PCD_TUNABLES": str(self.tunables)},
                                         start_new_session=True)
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM (kubelet leaves its pods to the runtime), SIGKILL the group if it lingers."""
        if self.proc is None:
            return
        terminate(self.proc, timeout)
        with contextlib.suppress(ProcessLookupError):   # helpers it started (mount, iptables, du)
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc = None

    def cgroups(self, pattern: str = "**/*") -> list[Path]:
        """Cgroups under the kubelet's root (in every hierarchy) matching ``pattern``."""
        return [p for h in cgroup_hierarchies(unified=True)
                for p in (h / self.cgroup_root.lstrip("/")).glob(pattern) if p.is_dir()]

    def remove_cgroups(self) -> list[str]:
        """Remove the cgroup root kubelet ran under, deepest first (kubelet leaves its QoS
        tree). Returns what was wrong: cgroups that still held processes (killed) or that
        could not be removed."""
        wrong = []
        tops = [h / self.cgroup_root.lstrip("/") for h in cgroup_hierarchies(unified=True)]
        for d in sorted(self.cgroups(), key=lambda p: len(p.parts), reverse=True) + [t for t in tops if t.is_dir()]:
            pids = (d / "cgroup.procs").read_text().split()
            if pids:
                wrong.append(f"processes {pids} in {d}")
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(pid), signal.SIGKILL)
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except OSError:                 # EBUSY while killed processes exit
                    time.sleep(0.1)
            else:
                wrong.append(f"cgroup {d} could not be removed")
        return wrong

    def log(self, tail: int = 200) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return ""
        return "\n".join(lines[-tail:])

    # -- static pods ------------------------------------------------------------------------

    def add_pod(self, name: str, containers: list[dict], **spec) -> str:
        """Write a static pod manifest; returns the pod's name as kubelet runs it
        (``<name>-<node>``)."""
        manifest = {"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": name, "namespace": "default"},
                    "spec": {"containers": containers, "dnsPolicy": "Default",
                             "terminationGracePeriodSeconds": 2, **spec}}
        tmp = self.manifests / f".{name}.json.tmp"     # hidden files are not read: write, then rename
        tmp.write_text(json.dumps(manifest, indent=1))
        tmp.rename(self.manifests / f"{name}.json")
        return f"{name}-{NODE}"

    def remove_pod(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.manifests / f"{name}.json").unlink()

    def remove_all_pods(self) -> None:
        for f in self.manifests.glob("*.json"):
            f.unlink()

    def wait(self, what: str, check, timeout: float = 120, interval: float = 0.5):
        """Poll ``check()`` until it returns something truthy; fail with kubelet's log."""
        def step():
            if not self.running():
                raise AssertionError(f"kubelet exited while waiting for {what}:\n{self.log()}")
            return check()

        try:
            return wait_for(step, timeout, what, interval)
        except AssertionError as exc:
            if str(exc).startswith("timed out"):
                raise AssertionError(f"{exc}; kubelet's log ends:\n{self.log()}") from None
            raise

    # -- what the runtime has, through crictl ---------------------------------------------

    def sandboxes(self, pod_name: str) -> list[dict]:
        return crictl_json(self.env, "pods", "--label", f"io.kubernetes.pod.name={pod_name}")["items"]

    def containers(self, pod_name: str, name: str = "") -> list[dict]:
        args = ["ps", "-a", "--label", f"io.kubernetes.pod.name={pod_name}"]
        if name:
            args += ["--name", f"^{name}$"]
        items = crictl_json(self.env, *args)["containers"]
        return sorted(items, key=lambda c: c["metadata"].get("attempt", 0))

    def running_container(self, pod_name: str, name: str) -> dict | None:
        """The pod's one running container ``name`` once its sandbox is ready, else None."""
        ready = [s for s in self.sandboxes(pod_name) if s["state"] == "SANDBOX_READY"]
        if len(ready) != 1:
            return None
        running = [c for c in self.containers(pod_name, name)
                   if c["state"] == "CONTAINER_RUNNING" and c["podSandboxId"] == ready[0]["id"]]
        return running[0] if len(running) == 1 else None
