"""Debian's ctr (containerd 1.6.20's client) drives the daemon: version, plugins,
namespaces, restart after SIGKILL (issue 2 acceptance)."""

from __future__ import annotations

import re
import subprocess

import pytest

from pycontainerd.version import VERSION
from tests.support.thirdparty import BROKEN_PLUGIN, make_plugin_dist

pytestmark = pytest.mark.interop


def ctr(ctr_bin, daemon, *args, ns=None, check=True):
    cmd = [ctr_bin, "--address", daemon.address, "--connect-timeout", "5s"]
    if ns:
        cmd += ["--namespace", ns]
    proc = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"ctr {' '.join(args)} failed ({proc.returncode}): {proc.stderr}\n{daemon.log()}")
    return proc


def server_section(out: str) -> dict[str, str]:
    server = out.split("Server:", 1)[1]
    return dict(re.findall(r"^\s+(\w+):\s*(.*)$", server, re.M))


def test_version_reports_our_server(ctr_bin, daemon):
    out = ctr(ctr_bin, daemon, "version").stdout
    server = server_section(out)
    assert server["Version"] == VERSION
    assert re.fullmatch(r"[0-9a-f-]{36}", server["UUID"])


def plugin_rows(out: str) -> dict[tuple[str, str], tuple[str, str]]:
    lines = out.strip().splitlines()
    assert lines[0].split() == ["TYPE", "ID", "PLATFORMS", "STATUS"]
    rows = {}
    for line in lines[1:]:
        type_, id_, platforms, status = line.split()
        rows[(type_, id_)] = (platforms, status)
    return rows


def test_plugins_ls_lists_every_plugin_with_status(ctr_bin, daemon):
    import pycontainerd_plugins

    rows = plugin_rows(ctr(ctr_bin, daemon, "plugins", "ls").stdout)
    expected = {(str(r.type), r.id) for r in pycontainerd_plugins.registry(entry_points=False)}
    assert expected <= set(rows)
    assert all(status == "ok" for _, status in rows.values()), rows
    # filters travel to the Introspection service
    only = plugin_rows(ctr(ctr_bin, daemon, "plugins", "ls", "type==io.containerd.grpc.v1").stdout)
    assert only and {t for t, _ in only} == {"io.containerd.grpc.v1"}
    bad = ctr(ctr_bin, daemon, "plugins", "ls", "type===x", check=False)
    assert bad.returncode != 0 and "unsupported operator" in bad.stderr and "invalid argument" in bad.stderr


def test_broken_plugin_shows_error_and_daemon_keeps_serving(ctr_bin, daemon_factory, tmp_path):
    env = make_plugin_dist(tmp_path / "site", "broken_plugin", BROKEN_PLUGIN)
    d = daemon_factory(env=env)
    rows = plugin_rows(ctr(ctr_bin, d, "plugins", "ls").stdout)
    assert rows[("io.containerd.internal.v1", "broken")][1] == "error"
    assert rows[("io.containerd.grpc.v1", "namespaces")][1] == "ok"
    detailed = ctr(ctr_bin, d, "plugins", "ls", "--detailed", "id==broken").stdout
    assert "this plugin is broken on purpose" in detailed
    ctr(ctr_bin, d, "namespaces", "create", "still-serving")
    assert "still-serving" in ctr(ctr_bin, d, "namespaces", "ls", "-q").stdout


def test_namespaces_create_ls_label_rm(ctr_bin, daemon):
    ctr(ctr_bin, daemon, "namespaces", "create", "team-a", "owner=alice", "tier=gold")
    ls = ctr(ctr_bin, daemon, "namespaces", "ls").stdout
    row = next(line for line in ls.splitlines() if line.startswith("team-a"))
    assert "owner=alice" in row and "tier=gold" in row
    ctr(ctr_bin, daemon, "namespaces", "label", "team-a", "tier=silver", "owner=")
    row = next(line for line in ctr(ctr_bin, daemon, "namespaces", "ls").stdout.splitlines()
               if line.startswith("team-a"))
    assert "tier=silver" in row and "owner" not in row
    assert ctr(ctr_bin, daemon, "namespaces", "ls", "-q").stdout.split() == ["team-a"]
    again = ctr(ctr_bin, daemon, "namespaces", "create", "team-a", check=False)
    assert again.returncode != 0 and "already exists" in again.stderr
    assert ctr(ctr_bin, daemon, "namespaces", "rm", "team-a").stdout.strip() == "team-a"
    assert ctr(ctr_bin, daemon, "namespaces", "ls", "-q").stdout.split() == []


def test_label_of_absent_namespace_creates_it_like_containerd(ctr_bin, daemon):
    """containerd 1.6: Namespaces.Get of an absent namespace is OK with no labels, and
    Update with labels (``ctr namespaces label``) creates it."""
    import grpc

    from pycontainerd.api.services.namespaces.v1 import namespace_pb2 as pb
    from pycontainerd.api.services.namespaces.v1 import namespace_pb2_grpc

    with grpc.insecure_channel(f"unix://{daemon.address}") as ch:
        got = namespace_pb2_grpc.NamespacesStub(ch).Get(pb.GetNamespaceRequest(name="nosuch"), timeout=10)
    assert (got.namespace.name, dict(got.namespace.labels)) == ("nosuch", {})
    assert ctr(ctr_bin, daemon, "namespaces", "ls", "-q").stdout.split() == []
    ctr(ctr_bin, daemon, "namespaces", "label", "nosuch", "a=b")
    row = next(line for line in ctr(ctr_bin, daemon, "namespaces", "ls").stdout.splitlines()
               if line.startswith("nosuch"))
    assert row.split() == ["nosuch", "a=b"]
    ctr(ctr_bin, daemon, "namespaces", "rm", "nosuch")


@pytest.mark.parametrize("name", ["bad/name", "trail-", "x" * 77, "a..b"])
def test_invalid_namespace_names_are_refused(ctr_bin, daemon, name):
    proc = ctr(ctr_bin, daemon, "namespaces", "create", name, check=False)
    assert proc.returncode != 0
    assert "invalid argument" in proc.stderr
    # as Debian's containerd 1.6.20: a call that works in the namespace refuses the bad name,
    # one that does not (Version, Namespaces.List) answers
    bad_header = ctr(ctr_bin, daemon, "containers", "ls", ns=name, check=False)
    assert bad_header.returncode != 0 and "namespace validation" in bad_header.stderr
    assert "invalid argument" in bad_header.stderr
    assert ctr(ctr_bin, daemon, "namespaces", "ls", ns=name).returncode == 0
    assert ctr(ctr_bin, daemon, "version", ns=name).returncode == 0


def test_sigkill_and_restart_keep_namespaces_and_uuid(ctr_bin, daemon):
    ctr(ctr_bin, daemon, "namespaces", "create", "survivor", "k=v")
    uuid_before = server_section(ctr(ctr_bin, daemon, "version").stdout)["UUID"]
    daemon.kill()
    daemon.start()  # same --root, --state and socket; the socket file is stale now
    assert server_section(ctr(ctr_bin, daemon, "version").stdout)["UUID"] == uuid_before
    row = next(line for line in ctr(ctr_bin, daemon, "namespaces", "ls").stdout.splitlines()
               if line.startswith("survivor"))
    assert "k=v" in row
