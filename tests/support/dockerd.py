"""Debian's dockerd (package ``docker.io``, 20.10) started on temporary dirs against a
containerd-compatible socket (ours or Debian's containerd), and a busybox image archive for
``docker load`` built with umoci + skopeo (no registry, no internet).

:class:`Dockerd` never touches the system's ``/var/lib/docker`` or ``/run/docker``: its
``--data-root``, ``--exec-root``, socket and pid file live under ``base``; its containers get
a cgroup parent of their own (``/pcd-<random>``) so that :meth:`Dockerd.cleanup` can kill every
container process left, whatever happened. Used by ``tests/interop/test_dockerd.py`` and
``bench/docker.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from pycontainerd.testing import add_busybox, build_image_layout, force_cleanup, require_tool, run_tool
from tests.support.procs import terminate

DOCKER = "/usr/bin/docker"  # Debian's CLI (20.10), not another one earlier on $PATH
DOCKERD = "/usr/sbin/dockerd"


def open_base(prefix: str) -> Path:
    """A fresh dir under /tmp, mode 0711: a remapped root (``--userns-remap``, user-namespace
    mappings) can pass through it, as through /var/lib/docker (pytest's tmp dirs are 0700)."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    base.chmod(0o711)
    return base


def build_busybox_archive(work: Path, tag: str = "busybox:latest") -> Path:
    """``docker-archive`` of busybox-static with every applet linked in /bin (``docker load``
    input): umoci makes the OCI image, skopeo converts it. Returns the archive's path."""
    applets = [a for a in subprocess.run(["/bin/busybox", "--list"], capture_output=True, text=True,
                                         check=True).stdout.split() if a != "busybox"]

    def fill(rootfs: Path) -> None:
        add_busybox(rootfs, applets)
        for d in ("tmp", "www", "etc"):
            (rootfs / d).mkdir(exist_ok=True)
        (rootfs / "tmp").chmod(0o1777)
        (rootfs / "www" / "index.html").write_text("hello from busybox httpd\n")

    layout = build_image_layout(work / "layout", "latest", fill, ("--config.cmd", "sh"))
    archive = work / "busybox.tar"
    run_tool(require_tool("skopeo", "skopeo"), "copy", "--quiet", f"oci:{layout}:latest",
             f"docker-archive:{archive}:{tag}")
    return archive


@dataclass
class Dockerd:
    """One dockerd; see the module docstring. ``netns``: run it in that network namespace
    (a pinned path) with the default bridge and iptables there; else ``--bridge=none
    --iptables=false`` in the host's namespace."""

    base: Path
    containerd: str
    extra_args: list[str] = field(default_factory=list)
    netns: str = ""
    proc: subprocess.Popen | None = None
    cgroup_parent: str = field(default_factory=lambda: f"/pcd-{uuid.uuid4().hex[:8]}")

    @property
    def host(self) -> str:
        return f"unix://{self.base}/docker.sock"

    @property
    def log_path(self) -> Path:
        return self.base / "dockerd.log"

    def command(self) -> list[str]:
        net = ["--bip", "172.31.251.1/24"] if self.netns else ["--bridge=none", "--iptables=false"]
        cmd = [DOCKERD, "--containerd", self.containerd, "--data-root", str(self.base / "data"),
               "--exec-root", str(self.base / "exec"), "-H", self.host, "--pidfile", str(self.base / "docker.pid"),
               "--cgroup-parent", self.cgroup_parent, "--ip6tables=false", *net, *self.extra_args]
        return ["nsenter", f"--net={self.netns}", *cmd] if self.netns else cmd

    def start(self, timeout: float = 60.0) -> Dockerd:
        self.base.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dockerd exited {self.proc.returncode}: {self.log()[-3000:]}")
            with contextlib.suppress(subprocess.TimeoutExpired):
                if self.docker("version", check=False, timeout=10).returncode == 0:
                    return self
            time.sleep(0.2)
        raise TimeoutError(f"dockerd not ready after {timeout}s: {self.log()[-3000:]}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def docker(self, *args: str, check: bool = True, input: str | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess:
        r = subprocess.run([DOCKER, "-H", self.host, *args], capture_output=True, text=True, timeout=timeout,
                           input=input, stdin=None if input is not None else subprocess.DEVNULL)
        if check and r.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} -> {r.returncode}: {r.stderr.strip()}")
        return r

    def inspect(self, name: str) -> dict:
        return json.loads(self.docker("inspect", name).stdout)[0]

    def wait_for(self, name: str, predicate, timeout: float = 60.0) -> dict:
        """Poll ``docker inspect`` until ``predicate(info)``; the last info, else AssertionError."""
        deadline = time.monotonic() + timeout
        info = self.inspect(name)
        while not predicate(info):
            if time.monotonic() > deadline:
                raise AssertionError(f"{name}: condition not met after {timeout}s: {info['State']}")
            time.sleep(0.2)
            info = self.inspect(name)
        return info

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM dockerd (it stops its containers unless ``--live-restore``) and wait."""
        terminate(self.proc, timeout)
        self.proc = None
        with contextlib.suppress(FileNotFoundError):
            (self.base / "docker.pid").unlink()

    def remove_containers(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        ids = self.docker("ps", "-aq", check=False).stdout.split()
        if ids:
            self.docker("rm", "-f", "-v", *ids, check=False)

    def cleanup(self) -> list[str]:
        """Remove every container, stop dockerd, kill what is left in its cgroup, unmount
        what is left under ``base``, remove ``base``. Returns the container processes that
        had to be killed (dockerd's own mounts of its data root, which it leaves behind
        after a ``--live-restore`` restart, are unmounted without a word)."""
        forced = []
        with contextlib.suppress(Exception):
            self.remove_containers()
        self.stop()
        for pid in cgroup_pids(self.cgroup_parent):
            forced.append(f"process {pid}")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        force_cleanup(self.base)  # mounts (and any process) left under base
        remove_cgroups(self.cgroup_parent)
        shutil.rmtree(self.base, ignore_errors=True)
        return forced


CGROUP_ROOT = Path("/sys/fs/cgroup")


def _cgroup_dirs(parent: str) -> list[Path]:
    """Every cgroup dir named ``parent`` (v1: one per controller; v2: one)."""
    rel = parent.strip("/")
    out = []
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        out.append(CGROUP_ROOT / rel)
    else:
        for ctl in CGROUP_ROOT.iterdir():
            if not ctl.is_symlink():
                out.append(ctl / rel)
    return [d for d in out if d.is_dir()]


def cgroup_pids(parent: str) -> list[int]:
    pids: set[int] = set()
    for d in _cgroup_dirs(parent):
        for procs in d.rglob("cgroup.procs"):
            with contextlib.suppress(OSError):
                pids.update(int(x) for x in procs.read_text().split())
    return sorted(pids)


def remove_cgroups(parent: str) -> None:
    for d in _cgroup_dirs(parent):
        for sub in sorted((p for p in d.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                sub.rmdir()
        with contextlib.suppress(OSError):
            d.rmdir()
