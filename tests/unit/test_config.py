import tomllib
from pathlib import Path

import pytest

from pycontainerd import config
from pycontainerd.errdefs import InvalidArgument

REPO = Path(__file__).resolve().parents[2]


def test_defaults_are_containerds_shape():
    cfg = config.Config()
    assert cfg.root == "/var/lib/pycontainerd"
    assert cfg.state == "/run/pycontainerd"
    assert cfg.grpc.address == "/run/pycontainerd/pycontainerd.sock"


def test_load_missing_default_path_gives_defaults(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "DEFAULT_CONFIG_PATH", tmp_path / "nope.toml")
    assert config.load(None) == config.Config()


def test_explicit_missing_file_is_an_error(tmp_path):
    with pytest.raises(InvalidArgument, match="does not exist"):
        config.load(tmp_path / "nope.toml")


def test_load_values_and_plugin_tables(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text(
        'version = 2\nroot = "/r"\ndisabled_plugins = ["x"]\n[grpc]\nuid = 5\n'
        '[plugins."io.containerd.metadata.v1.lmdb"]\nmap_size = 1024\n'
    )
    cfg = config.load(p)
    assert (cfg.root, cfg.grpc.uid, cfg.disabled_plugins) == ("/r", 5, ["x"])
    assert cfg.plugins == {"io.containerd.metadata.v1.lmdb": {"map_size": 1024}}


@pytest.mark.parametrize(
    "text,msg",
    [
        ("version = 1", "version 1"),
        ("bogus = 1", "unknown option"),
        ("[grpc]\nport = 1", "unknown option"),
        ('[grpc]\nuid = "root"', "must be a int"),
        ("root = [", "config file"),
        ("[plugins]\nx = 1", "must hold tables"),
    ],
)
def test_bad_config_is_a_clear_error(tmp_path, text, msg):
    p = tmp_path / "c.toml"
    p.write_text(text)
    with pytest.raises(InvalidArgument, match=msg):
        config.load(p)


def test_example_file_is_the_default_output():
    """config.toml.example is `pycontainerd config default`; regenerate it when this fails."""
    import pycontainerd_plugins
    from pycontainerd.plugin import build_config

    defaults = {r.uri: build_config(r, None) for r in pycontainerd_plugins.registry(entry_points=False) if r.config}
    text = config.default_toml(defaults)
    assert (REPO / "config.toml.example").read_text() == text
    assert config.from_dict(tomllib.loads(text)).root == "/var/lib/pycontainerd"
