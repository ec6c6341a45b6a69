"""pyctr's argument parsing and command output without a daemon: click's runner with the
connection replaced by a fake client."""

from __future__ import annotations

import asyncio
import json

import pytest
from click.testing import CliRunner

from pycontainerd.cli import app, cli
from pycontainerd.cli.leases import parse_duration
from pycontainerd.cli.specs import (
    RunOptions,
    labels_from,
    parse_env_file,
    parse_mount,
    spec_options,
)
from pycontainerd.client import ProcessStatus
from pycontainerd.descriptor import Descriptor
from pycontainerd.errdefs import InvalidArgument, NotFound
from pycontainerd.oci import opts as oci_opts


class FakeImage:
    def __init__(self, name, size=1024 * 1024, platforms=("linux/amd64",)):
        self.name = name
        self.target = Descriptor("application/vnd.oci.image.manifest.v1+json", "sha256:" + "b" * 64, 349)
        self.labels = {}
        self.created_at = self.updated_at = 0
        self._size, self._platforms = size, list(platforms)

    async def size(self, platform=None):
        return self._size

    async def platforms(self):
        return self._platforms


class FakeClient:
    namespace = "default"
    address = "/fake.sock"

    def __init__(self):
        self.calls = []

    async def list_images(self, *filters):
        self.calls.append(("list_images", filters))
        return [FakeImage("docker.io/library/zeta:1"), FakeImage("docker.io/library/alpha:2", 349)]

    async def list_tasks(self, filter=""):
        return [ProcessStatus("web", "web", 42, "running"), ProcessStatus("db", "db", 7, "stopped", 3)]

    async def get_image(self, name):
        raise NotFound(f'image "{name}"')


@pytest.fixture
def fake(monkeypatch):
    """Commands run against a FakeClient; returns the recorded settings and client."""
    seen = {}

    def run(settings, fn, connect=True):
        seen["settings"] = settings
        client = seen.setdefault("client", FakeClient())
        try:
            result = asyncio.run(fn(client))
        except app.ExitCode as exc:
            raise SystemExit(exc.code) from None
        except NotFound as exc:
            import click

            click.echo(f"pyctr: {exc}", err=True)
            raise SystemExit(1) from None
        raise SystemExit(result or 0)

    monkeypatch.setattr(app, "run", run)
    return seen


def invoke(*args, env=None):
    return CliRunner().invoke(cli, list(args), env=env or {}, catch_exceptions=False)


def test_pyctr_without_a_daemon_says_the_documented_message(tmp_path):
    res = CliRunner().invoke(cli, ["-a", str(tmp_path / "nope.sock"), "--connect-timeout", "0.5", "images", "ls"])
    assert res.exit_code == 1
    assert res.output.strip().splitlines() == [
        f"pyctr: cannot connect to {tmp_path / 'nope.sock'} within 0.5s (is the daemon running?): unavailable"]


def test_help_everywhere_with_examples():
    top = invoke("--help")
    assert top.exit_code == 0 and "Examples:" in top.output and "completion" in top.output
    for group in ("images", "content", "containers", "tasks", "snapshots", "namespaces", "leases", "plugins"):
        res = invoke(group, "--help")
        assert res.exit_code == 0, (group, res.output)
    for alias, name in (("c", "containers"), ("t", "tasks"), ("ns", "namespaces"), ("i", "images")):
        assert invoke(alias, "--help").output == invoke(name, "--help").output
    run_help = invoke("run", "--help").output
    for flag in ("--rm", "--detach", "--tty", "--env-file", "--mount", "--memory-limit", "--cpus", "--user",
                 "--cwd", "--net-host", "--snapshotter"):
        assert flag in run_help, flag


def test_global_options_and_environment(fake):
    invoke("images", "ls")
    s = fake["settings"]
    assert s.address == "/run/pycontainerd/pycontainerd.sock" and s.namespace == "default"
    invoke("images", "ls", env={"CONTAINERD_ADDRESS": "/c.sock", "CONTAINERD_NAMESPACE": "k8s.io"})
    assert (fake["settings"].address, fake["settings"].namespace) == ("/c.sock", "k8s.io")
    invoke("images", "ls", env={"CONTAINERD_ADDRESS": "/c.sock", "PYCONTAINERD_ADDRESS": "/p.sock",
                                "PYCONTAINERD_NAMESPACE": "mine"})
    assert (fake["settings"].address, fake["settings"].namespace) == ("/p.sock", "mine")
    invoke("-a", "/flag.sock", "-n", "other", "--timeout", "5", "--debug", "images", "ls",
           env={"PYCONTAINERD_ADDRESS": "/p.sock"})
    s = fake["settings"]
    assert (s.address, s.namespace, s.timeout, s.debug) == ("/flag.sock", "other", 5.0, True)


def test_images_ls_table_quiet_and_json(fake):
    out = invoke("images", "ls").output.splitlines()
    assert out[0].split() == ["REF", "TYPE", "DIGEST", "SIZE", "PLATFORMS", "LABELS"]
    assert out[1].startswith("docker.io/library/alpha:2") and "349 B" in out[1]
    assert out[2].startswith("docker.io/library/zeta:1") and "1.0 MiB" in out[2] and out[2].endswith("-")
    assert invoke("images", "ls", "-q").output.split() == ["docker.io/library/alpha:2", "docker.io/library/zeta:1"]
    doc = json.loads(invoke("images", "ls", "--format", "json", "name==x").output)
    assert [d["name"] for d in doc] == ["docker.io/library/alpha:2", "docker.io/library/zeta:1"]
    assert doc[0]["size"] == 349 and doc[0]["platforms"] == ["linux/amd64"]
    assert fake["client"].calls[-1] == ("list_images", ("name==x",))


def test_tasks_ls_formats(fake):
    rows = invoke("t", "ls").output.splitlines()
    assert rows[0].split() == ["TASK", "PID", "STATUS"] and rows[1].split() == ["db", "7", "STOPPED"]
    assert invoke("tasks", "ls", "-q").output.split() == ["db", "web"]
    assert json.loads(invoke("tasks", "ls", "--format", "json").output)[1]["pid"] == 42


def test_usage_errors_exit_2(fake):
    assert invoke("images", "pull").exit_code == 2
    assert invoke("images", "ls", "--format", "yaml").exit_code == 2
    assert invoke("nope").exit_code == 2
    res = invoke("images", "prune")
    assert res.exit_code == 2 and "--all" in res.output


def test_run_arguments_after_the_id_belong_to_the_command(fake, monkeypatch):
    seen = {}

    async def create(client, image, cid, args, kw):
        seen.update(image=image, id=cid, args=args, kw=dict(kw))
        raise app.ExitCode(0)

    monkeypatch.setattr("pycontainerd.cli.run.create_container", create)
    res = invoke("run", "--rm", "-e", "A=1", "-e", "B=2", "--memory-limit", "64m", "--cpus", "1.5", "--net-host",
                 "img:1", "box", "sh", "-c", "echo --rm -t")
    assert res.exit_code == 0, res.output
    assert seen["image"] == "img:1" and seen["id"] == "box" and seen["args"] == ("sh", "-c", "echo --rm -t")
    kw = seen["kw"]
    assert kw["env"] == ("A=1", "B=2") and kw["memory_limit"] == "64m" and kw["cpus"] == 1.5 and kw["net_host"]
    assert invoke("run", "--rm", "-d", "img:1", "box", "true").exit_code == 2  # --rm with -d


def test_missing_image_message(fake):
    res = CliRunner().invoke(cli, ["run", "--rm", "nothing:here", "x", "true"])
    assert res.exit_code == 1
    assert res.output.strip().splitlines() == [
        'pyctr: image "nothing:here": not found (pull it first: pyctr images pull nothing:here)']


def test_errors_are_one_line_unless_debug(capsys):
    async def boom(client):
        raise InvalidArgument("bad thing")

    with pytest.raises(SystemExit) as exit_:
        app.run(app.Settings(address="/nowhere.sock"), boom, connect=False)
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert err == "pyctr: bad thing: invalid argument\n"
    with pytest.raises(SystemExit):
        app.run(app.Settings(address="/nowhere.sock", debug=True), boom, connect=False)
    err = capsys.readouterr().err
    assert "Traceback" in err and err.rstrip().endswith("pyctr: bad thing: invalid argument")

    async def code(client):
        return 42

    with pytest.raises(SystemExit) as exit_:
        app.run(app.Settings(address="/nowhere.sock"), code, connect=False)
    assert exit_.value.code == 42


def test_completion_script():
    res = invoke("completion", "bash")
    assert res.exit_code == 0 and "_PYCTR_COMPLETE" in res.output


def test_parse_mount():
    assert parse_mount("type=bind,src=/a,dst=/b,options=rbind:ro") == {
        "destination": "/b", "type": "bind", "source": "/a", "options": ["rbind", "ro"]}
    assert parse_mount("src=/a,dst=/b")["options"] == ["rbind"]
    assert parse_mount("type=tmpfs,dst=/t,options=size=64m".replace("size=64m", "nosuid")) == {
        "destination": "/t", "type": "tmpfs", "source": "none", "options": ["nosuid"]}
    for bad in ("src=/a", "type=bind,dst=/b", "src=/a,dst=rel", "src=/a,dst=/b,colour=red", "junk"):
        with pytest.raises(InvalidArgument):
            parse_mount(bad)


def test_parse_env_file():
    text = "# comment\n\nA=1\nB = spaced\nFROM_ENV\nUNSET\nC=with=equals\n"
    with pytest.raises(InvalidArgument):
        parse_env_file(text, {})
    assert parse_env_file("A=1\nFROM_ENV\nUNSET\nC=x=y\n", {"FROM_ENV": "v"}) == ["A=1", "FROM_ENV=v", "C=x=y"]


def test_spec_options_follow_ctr(tmp_path):
    env_file = tmp_path / "e.env"
    env_file.write_text("FROM_FILE=1\nA=file\n")
    ro = RunOptions(args=("sh",), env=("A=flag",), env_files=(str(env_file),), mounts=("src=/srv,dst=/srv",),
                    cwd="/srv", hostname="h", memory_limit="1MiB", cpus=2.0, net_host=True, tty=True,
                    read_only=True, cap_add=("CAP_SYS_ADMIN",), annotations=("k=v",))
    spec = oci_opts.generate("default", "c1", *spec_options(ro, host_hostname="hosty"))
    p = spec["process"]
    assert p["args"] == ["sh"] and p["cwd"] == "/srv" and p["terminal"]
    assert "A=flag" in p["env"] and "FROM_FILE=1" in p["env"] and "HOSTNAME=hosty" in p["env"]
    assert "A=file" not in p["env"]
    assert spec["hostname"] == "h" and spec["root"]["readonly"] is True
    assert spec["linux"]["resources"]["memory"]["limit"] == 1 << 20
    assert spec["linux"]["resources"]["cpu"]["quota"] == 200000
    assert not any(n["type"] == "network" for n in spec["linux"]["namespaces"])
    dests = {m["destination"] for m in spec["mounts"]}
    assert {"/srv", "/etc/hosts", "/etc/resolv.conf"} <= dests
    assert "CAP_SYS_ADMIN" in p["capabilities"]["bounding"] and spec["annotations"] == {"k": "v"}
    assert any(d.get("major") == 136 for d in spec["linux"]["resources"]["devices"])  # default unix devices
    with pytest.raises(InvalidArgument):
        spec_options(RunOptions(env=("NOEQUALS",)))
    with pytest.raises(InvalidArgument):
        spec_options(RunOptions(memory_limit="lots"))
    with pytest.raises(InvalidArgument):
        spec_options(RunOptions(env_files=(str(tmp_path / "missing.env"),)))


def test_small_parsers():
    from datetime import timedelta

    assert parse_duration("1h30m") == timedelta(minutes=90) and parse_duration("0") == timedelta(0)
    import click

    with pytest.raises(click.BadParameter):
        parse_duration("soon")
    assert labels_from(["a=1", "b="]) == {"a": "1", "b": ""}
    with pytest.raises(InvalidArgument):
        labels_from(["novalue"])


def test_empty_address_and_non_positive_timeouts_are_usage_errors():
    res = CliRunner().invoke(cli, ["-a", "", "version"])
    assert res.exit_code == 2 and "the daemon address is empty" in res.output
    for flag, value in (("--connect-timeout", "-1"), ("--connect-timeout", "0"), ("--timeout", "-5")):
        res = CliRunner().invoke(cli, [flag, value, "version"])
        assert res.exit_code == 2 and f"Invalid value for '{flag}'" in res.output, (flag, value, res.output)
