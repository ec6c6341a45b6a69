"""contrib/pycontainerd.service: systemd accepts it, and it keeps the directives containerd's
own unit has for a container runtime (shims outlive a daemon restart: ``KillMode=process``)."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "contrib" / "pycontainerd.service"
VENV_BIN = "/opt/pycontainerd/.venv/bin/pycontainerd"


def parse(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=True, interpolation=None, delimiters=("=",),
                                       comment_prefixes=("#", ";"))
    parser.optionxform = str  # directive names are case-sensitive
    parser.read_string(text)
    return parser


def test_unit_has_containerds_directives():
    unit = parse(UNIT.read_text())
    assert unit["Unit"]["After"].split() == ["network.target", "local-fs.target"]
    service = unit["Service"]
    assert service["ExecStart"] == VENV_BIN
    assert service["ExecStartPre"] == "-/sbin/modprobe overlay"
    assert {k: service[k] for k in ("Type", "Delegate", "KillMode", "Restart", "RestartSec", "LimitNPROC",
                                    "LimitCORE", "LimitNOFILE", "TasksMax", "OOMScoreAdjust")} == {
        "Type": "notify", "Delegate": "yes", "KillMode": "process", "Restart": "always", "RestartSec": "5",
        "LimitNPROC": "infinity", "LimitCORE": "infinity", "LimitNOFILE": "infinity", "TasksMax": "infinity",
        "OOMScoreAdjust": "-999",
    }
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def _verify(tmp_path: Path, text: str) -> subprocess.CompletedProcess:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.fail("systemd-analyze is missing: apt-get install systemd (.ci/install does)", pytrace=False)
    path = tmp_path / "pycontainerd.service"
    path.write_text(text)
    return subprocess.run([tool, "verify", str(path)], capture_output=True, text=True, timeout=60, cwd=tmp_path)


def _our_complaints(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in (result.stdout + result.stderr).splitlines() if "pycontainerd" in line]


def test_systemd_analyze_verify_accepts_the_unit(tmp_path):
    # ExecStart must exist for verify: point it at this checkout's installed entry point
    here = Path(sys.executable).parent / "pycontainerd"
    assert here.exists(), f"{here}: install the project (pip install -e .)"
    result = _verify(tmp_path, UNIT.read_text().replace(VENV_BIN, str(here)))
    assert result.returncode == 0 and _our_complaints(result) == [], result.stdout + result.stderr


def test_systemd_analyze_verify_would_catch_a_mistake(tmp_path):
    """The check above can fail: a misspelt directive and a missing binary are reported."""
    here = Path(sys.executable).parent / "pycontainerd"
    typo = _verify(tmp_path, UNIT.read_text().replace(VENV_BIN, str(here)).replace("KillMode=", "KillMod="))
    assert any("KillMod" in line for line in _our_complaints(typo)), typo.stderr
    absent = str(tmp_path / "nowhere" / "pycontainerd")
    missing = _verify(tmp_path, UNIT.read_text().replace(VENV_BIN, absent))
    assert missing.returncode != 0 and any(absent in line for line in _our_complaints(missing)), missing.stderr
