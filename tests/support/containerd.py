"""Start Debian's real containerd on temporary root/state/socket (never the system
service), for interop tests of our client and for side-by-side benchmarks."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from pycontainerd.testing import mounts_under

CONFIG = """version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.tracing.processor.v1.otlp",
                    "io.containerd.internal.v1.tracing"]
[grpc]
  address = "{address}"
[ttrpc]
  address = "{address}.ttrpc"
[debug]
  address = "{base}/debug.sock"
  level = "info"
[plugins."io.containerd.runtime.v1.linux"]
  runtime_root = "{base}/runc-v1"
"""


@dataclass
class Containerd:
    base: Path
    proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return str(self.base / "containerd.sock")

    def start(self, timeout: float = 30.0) -> Containerd:
        binary = shutil.which("containerd")
        if binary is None:
            raise RuntimeError("Debian's containerd is not installed (the README's install command installs it)")
        self.base.mkdir(parents=True, exist_ok=True)
        cfg = self.base / "config.toml"
        cfg.write_text(CONFIG.format(root=self.base / "root", state=self.base / "state",
                                     address=self.address, base=self.base))
        log = open(self.base / "containerd.log", "ab")
        self.proc = subprocess.Popen([binary, "--config", str(cfg)], stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"containerd exited: {(self.base / 'containerd.log').read_text()[-2000:]}")
            if os.path.exists(self.address):
                rc = subprocess.run(["ctr", "--address", self.address, "--connect-timeout", "1s", "version"],
                                    capture_output=True).returncode
                if rc == 0:
                    return self
            time.sleep(0.1)
        raise TimeoutError("containerd did not come up")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None
        # shims started by this containerd (if any) die with their tasks; unmount leftovers
        for mp in reversed(mounts_under(str(self.base))):
            subprocess.run(["umount", "-l", mp], capture_output=True)
