"""The shipped pytest plugin (pycontainerd.testing) gives a daemon, a client and a registry,
and leaves nothing of a failed test behind."""

import subprocess
import sys
from pathlib import Path

import pytest

from pycontainerd.testing import mounts_under, processes_mentioning

pytestmark = pytest.mark.integration


def test_client_fixture_talks_to_a_fresh_daemon(pycontainerd_client, pycontainerd_daemon):
    assert pycontainerd_client.version().version
    pycontainerd_client.create_namespace("from-plugin")
    assert "from-plugin" in [n.name for n in pycontainerd_client.list_namespaces()]
    assert pycontainerd_daemon.root.exists()


def test_registry_fixture_answers(pycontainerd_registry):
    with pycontainerd_registry.client() as http:
        assert http.get("/v2/").status_code == 200


@pytest.mark.root
def test_registry_fixture_gives_a_runnable_image_in_one_call(pycontainerd_client, pycontainerd_registry):
    """Issue 18.10: ``pycontainerd_registry.busybox()`` builds (umoci, skopeo, Debian's
    busybox-static) and pushes a small image a first test can pull and run."""
    from pycontainerd.client import cio, with_process_args

    ref = pycontainerd_registry.busybox()
    assert ref == f"{pycontainerd_registry.host}/library/busybox:latest"
    assert pycontainerd_registry.busybox() == ref  # built once
    image = pycontainerd_client.pull(ref, plain_http=True)
    container = pycontainerd_client.new_container("hello", image, with_process_args("echo", "hello"))
    try:
        task = container.new_task(stdio=cio.capture())
        try:
            task.start()
            assert task.wait().code == 0
            assert task.io.stdout_bytes == b"hello\n"
        finally:
            task.delete()
    finally:
        container.delete()


@pytest.mark.root
def test_a_failed_test_leaves_no_shim_container_or_mount(tmp_path):
    """The shipped fixture's teardown removes what a failing test left running: the shim,
    the container's processes, the rootfs mount and the daemon's directory (the test runs
    in a pytest of its own, with nothing but the installed plugin)."""
    record = tmp_path / "base.txt"
    inner = tmp_path / "test_inner.py"
    inner.write_text(f'''
from pycontainerd.client import with_process_args


def test_fails_with_a_task_running(pycontainerd_client, pycontainerd_daemon, pycontainerd_registry):
    with open({str(record)!r}, "w") as f:
        f.write(str(pycontainerd_daemon.base))
    image = pycontainerd_client.pull(pycontainerd_registry.busybox(), plain_http=True)
    container = pycontainerd_client.new_container("left", image, with_process_args("sleep", "987654"))
    container.new_task().start()
    assert False, "failing with the task running"
''')
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(inner)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=600)
    assert "1 failed" in out.stdout, out.stdout + out.stderr
    base = record.read_text()
    assert mounts_under(base) == []
    assert processes_mentioning(base + "/") == []
    assert processes_mentioning("sleep\0" + "987654") == []
    assert not Path(base).exists()
