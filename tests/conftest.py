"""Fixtures shared by every test tier.

``daemon_factory`` starts real daemons on temporary ``--root``/``--state`` dirs and always
stops them at teardown, removing whatever a test left behind (containers, shims, mounts, pod
netns: :func:`pycontainerd.testing.force_cleanup`, the one cleanup every fixture uses). Tests that need root are marked ``root`` and skipped — loudly —
when not run as root; CI runs as root, so there they always run.
"""

from __future__ import annotations

import gc
import os
import shutil

import pytest

from pycontainerd.testing import Daemon, force_cleanup

pytest_plugins = ["tests.support.registry", "tests.support.images"]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """No garbage collection while pytest formats a failure (an xfail too): CPython 3.11.2's
    ``ast.parse``, which pytest uses to show the failing source, fails with "AST constructor
    recursion depth mismatch" when a finalizer (a leaked asyncio task's) runs inside it, and
    that SystemError ends the whole session as an INTERNALERROR."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def pytest_collection_modifyitems(config, items):
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (run the suite as root, as CI does)")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def daemon_factory(pycontainerd_daemon_factory):
    """``make(config_text=None, extra_args=(), env=None, start=True) -> Daemon`` — the
    shipped plugin's factory (:mod:`pycontainerd.testing`), which our tests use."""
    return pycontainerd_daemon_factory


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
    """A real containerd (Debian's) on temporary dirs; stopped at teardown, with what it
    left there removed (:func:`pycontainerd.testing.force_cleanup`)."""
    from tests.support.containerd import Containerd

    c = Containerd(tmp_path_factory.mktemp("containerd")).start()
    yield c
    c.stop()
    force_cleanup(c.base)  # its shims and mounts, when a test failed before removing them
    shutil.rmtree(c.base, ignore_errors=True)
