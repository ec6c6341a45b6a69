"""A real kubelet (k8s.io/kubernetes v1.34.4, built by ``.ci/go-tools``) in standalone mode on a
CRI node of :mod:`tests.support.critest`: no API server, static pods from a manifest folder.

Its configuration is the smallest that runs on these hosts: ``failCgroupV1: false`` (cgroup v1
hybrid), ``cgroupDriver: cgroupfs``, no per-QoS cgroups and no node-allocatable enforcement
(nothing written under the host's cgroup roots but the pods' own), eviction thresholds that a
shared build machine does not cross, its own root dir, pod log dir and no listening server.
It runs inside the node's network namespace, like the runtime.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.crictl import tool

KUBELET_CONFIG = {
    "apiVersion": "kubelet.config.k8s.io/v1beta1",
    "kind": "KubeletConfiguration",
    "failCgroupV1": False,
    "cgroupDriver": "cgroupfs",
    "cgroupsPerQOS": False,
    "enforceNodeAllocatable": ["none"],
    "failSwapOn": False,
    "enableServer": False,
    "readOnlyPort": 0,
    "healthzPort": 0,
    "fileCheckFrequency": "1s",
    "syncFrequency": "2s",
    "evictionHard": {"memory.available": "1Mi", "nodefs.available": "1%", "imagefs.available": "1%",
                     "nodefs.inodesFree": "1%"},
    "localStorageCapacityIsolation": False,
    "makeIPTablesUtilChains": False,
    "registerNode": False,
    "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
    "authorization": {"mode": "AlwaysAllow"},
}


@dataclass
class Kubelet:
    base: Path
    proc: subprocess.Popen

    @property
    def manifests(self) -> Path:
        return self.base / "manifests"

    def log(self) -> str:
        return (self.base / "kubelet.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@contextlib.contextmanager
def kubelet(node, base: Path):
    """A standalone kubelet on ``node`` (a :class:`tests.support.critest.CRINode`); static pods
    go in ``.manifests``. Stopped at the end (its pods stay: the caller deletes manifests first
    and the node's teardown removes what is left)."""
    base.mkdir(parents=True)
    (base / "manifests").mkdir()
    (base / "pods").mkdir()
    cfg = dict(KUBELET_CONFIG, staticPodPath=str(base / "manifests"), podLogsDir=str(base / "pods"),
               containerRuntimeEndpoint=f"unix://{node.address}")
    (base / "config.json").write_text(json.dumps(cfg))   # JSON is YAML: kubelet reads it as is
    log = open(base / "kubelet.log", "wb")
    proc = subprocess.Popen(["nsenter", f"--net={node.netns}", tool("kubelet"), "--config", str(base / "config.json"),
                             "--root-dir", str(base / "root"), "--hostname-override", "pcd-node", "--v", "2"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    k = Kubelet(base, proc)
    try:
        time.sleep(0.5)
        if proc.poll() is not None:
            raise RuntimeError(f"kubelet exited {proc.returncode}:\n{k.log()[-5000:]}")
        yield k
    finally:
        k.stop()
        root = base / "root"
        with open("/proc/self/mountinfo") as f:        # kubelet's own bind mounts of pod volumes
            mounts = [line.split()[4] for line in f if line.split()[4].startswith(str(root))]
        for mp in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", mp], capture_output=True)
