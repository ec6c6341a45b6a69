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
