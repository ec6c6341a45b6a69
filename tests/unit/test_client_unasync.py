"""The sync client is generated from the async one and must not drift from it."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys

import pytest

from pycontainerd.client import _sync, _unasync


def test_generated_files_match_the_async_source():
    files = _unasync.generate()
    stale = [str(p) for p, text in files.items() if not p.exists() or p.read_text() != text]
    assert not stale, f"regenerate with: python -m pycontainerd.client._unasync  (stale: {stale})"


def test_check_mode_exit_code():
    proc = subprocess.run([sys.executable, "-m", "pycontainerd.client._unasync", "--check"], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr


def test_check_mode_reports_drift(tmp_path, monkeypatch):
    out = tmp_path / "_sync"
    out.mkdir()
    monkeypatch.setattr(_unasync, "OUT", out)
    (out / "client.py").write_text("# edited by hand\n")
    assert _unasync.main(["--check"]) == 1
    assert _unasync.main([]) == 0
    assert _unasync.main(["--check"]) == 0


@pytest.mark.parametrize("spec", _unasync.SPECS, ids=lambda s: s.module)
def test_every_public_async_method_has_a_sync_twin(spec):
    module = __import__(f"pycontainerd.client.{spec.module}", fromlist=["x"])
    for async_name, sync_name in spec.classes:
        async_cls = getattr(module, async_name)
        sync_cls = getattr(_sync, sync_name)
        for name, member in vars(async_cls).items():
            if name.startswith("_") or isinstance(member, (staticmethod, classmethod)):
                continue
            if not (inspect.isfunction(member) or isinstance(member, property)):
                continue
            assert hasattr(sync_cls, name), f"{sync_name}.{name} missing"
            if inspect.isfunction(member):
                a = inspect.signature(member)
                s = inspect.signature(getattr(sync_cls, name))
                assert list(a.parameters) == list(s.parameters), name
                assert not inspect.iscoroutinefunction(getattr(sync_cls, name)), name


def test_generated_code_parses_and_has_no_await():
    for path, text in _unasync.generate().items():
        tree = ast.parse(text)
        assert not any(isinstance(n, (ast.Await, ast.AsyncFor, ast.AsyncWith)) for n in ast.walk(tree)), path


def test_docstrings_are_rewritten_for_sync_use():
    doc = _sync.Client.lease.__doc__ + _sync.Client.__doc__
    assert "async with" not in doc and "await " not in doc and "AsyncClient" not in doc
    assert "Client" in _sync.Client.__doc__
