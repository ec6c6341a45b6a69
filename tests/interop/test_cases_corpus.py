"""The edge-case corpus of issue 15 (``../shared/cases``, beside the clone) through Debian's
``ctr`` against a fresh daemon of ours: ``build.sh`` makes the inputs from scratch and pushes
them to a registry on 127.0.0.1, ``run.sh`` drives every case (one line each, then
``cases: N passed, N failed, N skipped``) and starts private daemons of ours with
``DAEMON_CMD`` for its user-namespace, restart and crash parts. The test fails unless the
summary shows 0 failed; it prints every case line and where the per-case logs are.

C17–C19 are CRI-only and skipped by the corpus; their tests go through crictl
(``tests/integration/test_cri_corners.py``). Hold-out cases not in this copy are skipped by
``run.sh`` itself.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from pycontainerd.testing import Daemon
from pycontainerd.testing import force_cleanup, netns_pins

pytestmark = [pytest.mark.interop, pytest.mark.integration, pytest.mark.root]

ROOT = Path(__file__).resolve().parents[2]
CASES = ROOT.parent / "shared" / "cases"
SUMMARY = re.compile(r"^cases: (\d+) passed, (\d+) failed, (\d+) skipped", re.M)
CASE_LINE = re.compile(r"^C\d\d (PASS|FAIL|SKIP)\b.*$", re.M)
BUILD_TIMEOUT = 900
RUN_TIMEOUT = 2400


def _free_port_run(n: int = 4) -> int:
    """The first of ``n`` consecutive free ports on 127.0.0.1 (localreg.py takes 4)."""
    for _ in range(200):
        base = random.randrange(20000, 60000)
        socks = []
        try:
            for port in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no {n} consecutive free ports on 127.0.0.1")


def _need(tool: str, package: str) -> None:
    if shutil.which(tool) is None:
        pytest.fail(f"{tool} is missing: apt-get install {package} (.ci/install does)", pytrace=False)


def test_corpus_passes_against_a_fresh_daemon(tmp_path, registry, ctr_bin):
    if not (CASES / "run.sh").is_file():
        pytest.fail(f"the corpus is not at {CASES} (the clone's sibling ../shared/cases)", pytrace=False)
    for tool, package in (("zstd", "zstd"), ("curl", "curl"), ("runc", "runc"), ("unshare", "util-linux")):
        _need(tool, package)
    out = tmp_path / "out"
    env = {**os.environ, "REG": registry.host, "CASES_OUT": str(out), "TMPDIR": str(tmp_path)}
    build = subprocess.run(["bash", str(CASES / "build.sh")], env=env, capture_output=True, text=True,
                           timeout=BUILD_TIMEOUT, stdin=subprocess.DEVNULL)
    assert build.returncode == 0, f"build.sh failed ({build.returncode}):\n{build.stdout}\n{build.stderr}"

    pins = netns_pins()
    base = tmp_path / "daemon"
    daemon = Daemon(base=base).start()
    # private daemons run.sh starts (C02, C16, C20): ours, on dirs it makes and removes
    priv_state = Path(tempfile.mkdtemp(prefix="pcd-cases-", dir="/run"))
    daemon_cmd = (f"{sys.executable} -m pycontainerd_cmd.daemon --root {{root}} --state {{state}} "
                  "--address {address}")
    logdir = out / "logs" / "cases-ci"
    env.update(ADDR=daemon.address, NS="cases-ci", DAEMON_CMD=daemon_cmd, LOGDIR=str(logdir),
               PRIV_BASE=str(tmp_path), PRIV_STATE_BASE=str(priv_state), LOCALREG_PORT=str(_free_port_run()),
               # the crash-during-unpack part of C20 pulls an image of the corpus (no internet here)
               C20_IMAGE=f"{registry.host}/cases/c07-empty-layers:latest",
               # every case runs: none is skipped because a budget was spent
               RUN_BUDGET=str(RUN_TIMEOUT))
    leftovers: list[str] = []
    try:
        run = subprocess.run(["bash", str(CASES / "run.sh")], env=env, capture_output=True, text=True,
                             timeout=RUN_TIMEOUT + 120, stdin=subprocess.DEVNULL)
    finally:
        daemon.stop()
        logdir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            shutil.copy(daemon.log_path, logdir / "daemon.log")
        leftovers = force_cleanup(base, pins) + force_cleanup(priv_state, pins)
        with contextlib.suppress(OSError):
            shutil.rmtree(priv_state)
        shutil.rmtree(base, ignore_errors=True)
    lines = [m.group(0) for m in CASE_LINE.finditer(run.stdout)]
    print("\n".join(lines))
    summary = SUMMARY.search(run.stdout)
    failed = [line for line in lines if " FAIL " in line]
    where = f"per-case logs: {logdir}/<case>.log; the daemon's log: {logdir}/daemon.log"
    assert summary is not None, f"run.sh printed no summary (rc {run.returncode}):\n{run.stdout}\n{run.stderr}\n{where}"
    assert int(summary.group(2)) == 0 and not failed, (
        f"{summary.group(0)}\n" + "\n".join(failed) + f"\n{where}")
    assert not [line for line in lines if "run budget" in line], "\n".join(lines)
    assert not leftovers, f"left behind after the corpus: {leftovers}"
