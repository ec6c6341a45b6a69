"""Issue 18.8: a script saved in the folder that holds a clone named ``pycontainerd`` (as
``git clone`` names it). Python puts the script's folder first on ``sys.path``, so the
clone's top directory becomes a namespace package ``pycontainerd`` ahead of an editable
install. The import then fails with a message naming the cause and the ways out, and works
with ``python -P`` (the script's folder not searched)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pycontainerd

CLONE = Path(__file__).resolve().parents[2]
SCRIPT = "from pycontainerd.client import Client\nprint('imported', Client.__name__)\n"


def _run(folder: Path, *flags: str) -> subprocess.CompletedProcess:
    (folder / "script.py").write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSAFEPATH")}
    return subprocess.run([sys.executable, *flags, "script.py"], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=120)


def test_script_next_to_a_clone_named_pycontainerd(tmp_path):
    (tmp_path / "pycontainerd").symlink_to(CLONE, target_is_directory=True)
    r = _run(tmp_path)
    if Path(pycontainerd.__file__).resolve().is_relative_to(CLONE):
        # an editable install of this clone (the project's own install step): the clone's top
        # directory is found first; the error says so instead of "cannot import name ..."
        assert r.returncode != 0
        last = r.stderr.strip().splitlines()[-1]
        assert last.startswith("ImportError: pycontainerd: Python imported the folder "
                               f"{tmp_path / 'pycontainerd'}"), r.stderr
        assert "instead of the installed package" in last and "-P" in last and "without -e" in last
        assert "unknown location" not in r.stderr
    else:
        # a regular install in site-packages wins over a namespace package by itself
        assert r.returncode == 0 and r.stdout == "imported Client\n", r.stderr
    ok = _run(tmp_path, "-P")
    assert ok.returncode == 0 and ok.stdout == "imported Client\n", ok.stderr


def test_same_script_elsewhere_imports(tmp_path):
    r = _run(tmp_path)
    assert r.returncode == 0 and r.stdout == "imported Client\n", r.stderr
