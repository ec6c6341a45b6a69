"""Fixtures shared by every test tier.

``daemon_factory`` starts real daemons on temporary ``--root``/``--state`` dirs and always
stops them at teardown. Tests that need root are marked ``root`` and skipped — loudly —
when not run as root; CI runs as root, so there they always run.
"""

from __future__ import annotations

import os
import shutil

import pytest

from tests.support.daemon import Daemon

pytest_plugins = ["tests.support.registry", "tests.support.images"]


def pytest_collection_modifyitems(config, items):
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (run the suite as root, as CI does)")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def daemon_factory(tmp_path_factory):
    """``make(config_text=None, extra_args=(), env=None, start=True) -> Daemon``."""
    started: list[Daemon] = []

    def make(config_text: str | None = None, extra_args=(), env=None, start: bool = True, base=None) -> Daemon:
        base = base or tmp_path_factory.mktemp("pcd")
        cfg = None
        if config_text is not None:
            cfg = base / "config.toml"
            cfg.write_text(config_text)
        d = Daemon(base=base, config=cfg, extra_args=list(extra_args), env=dict(env or {}))
        started.append(d)
        if start:
            d.start()
        return d

    yield make
    for d in started:
        d.stop()
    for d in started:
        shutil.rmtree(d.base, ignore_errors=True)


@pytest.fixture
def daemon(daemon_factory) -> Daemon:
    """One running daemon with default configuration."""
    return daemon_factory()


@pytest.fixture(scope="session")
def ctr_bin() -> str:
    """Debian's ``ctr`` (package ``containerd``)."""
    path = shutil.which("ctr")
    if path is None:
        pytest.fail("Debian's ctr is not installed: apt-get install containerd (the README's install command does)")
    return path


@pytest.fixture
def containerd(tmp_path_factory):
    """A real containerd (Debian's) on temporary dirs; stopped at teardown."""
    from tests.support.containerd import Containerd

    c = Containerd(tmp_path_factory.mktemp("containerd")).start()
    yield c
    c.stop()
    shutil.rmtree(c.base, ignore_errors=True)
