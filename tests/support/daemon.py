"""Start and stop a real pycontainerd daemon on temporary dirs, for integration and interop
tests. Teardown always kills the process group and waits, also when a test failed."""

from __future__ import annotations

import os
import signal as signals
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc


@dataclass
class Daemon:
    """A running daemon: ``address`` is its unix socket; ``root``/``state`` its dirs."""

    base: Path
    config: Path | None = None
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None

    @property
    def root(self) -> Path:
        return self.base / "root"

    @property
    def state(self) -> Path:
        return self.base / "state"

    @property
    def address(self) -> str:
        return str(self.base / "pycontainerd.sock")

    @property
    def log_path(self) -> Path:
        return self.base / "daemon.log"

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "pycontainerd_cmd.daemon", "--root", str(self.root),
               "--state", str(self.state), "--address", self.address, "--log-level", "debug"]
        if self.config is not None:
            cmd += ["--config", str(self.config)]
        return cmd + self.extra_args

    def start(self, wait: bool = True, timeout: float = 20.0) -> Daemon:
        self.base.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, **self.env}, start_new_session=True,
        )
        log.close()
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.proc.returncode}:\n{self.log()}")
            if os.path.exists(self.address):
                with grpc.insecure_channel(f"unix:{self.address}") as ch:
                    try:
                        grpc.channel_ready_future(ch).result(timeout=0.5)
                        return
                    except grpc.FutureTimeoutError:
                        pass
            time.sleep(0.05)
        raise TimeoutError(f"daemon not ready after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, sig: int = signals.SIGTERM, timeout: float = 20.0) -> int:
        """Signal the daemon and wait; SIGKILL the group if it does not exit in time."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signals.SIGKILL)
                self.proc.wait()
        rc = self.proc.returncode
        self.proc = None
        return rc

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        self.stop(signals.SIGKILL)

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(f"unix:{self.address}")
