"""The shipped pytest plugin (pycontainerd.testing) gives a daemon, a client and a registry."""

import pytest

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
