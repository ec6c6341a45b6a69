"""Daemon configuration in containerd's config version 2 shape.

Read from ``/etc/pycontainerd/config.toml`` (``--config`` overrides) with :mod:`tomllib`;
command-line flags override the file. ``pycontainerd config default`` prints
:func:`default_toml` — every option with its default, plugin tables included — and that
output is ``config.toml.example``.

Shape::

    version = 2
    root = "/var/lib/pycontainerd"
    state = "/run/pycontainerd"
    disabled_plugins = []          # URIs or ids
    required_plugins = []          # URIs; the daemon exits if one fails to init
    [grpc]   address, tcp_address, tcp_tls_ca, tcp_tls_cert, tcp_tls_key, uid, gid,
             max_recv_message_size, max_send_message_size
    [debug]  address, uid, gid, level, format
    [metrics] address, grpc_histogram
    [plugins."<type>.<id>"]  each plugin's own options
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from .errdefs import InvalidArgument, quote

DEFAULT_CONFIG_PATH = Path("/etc/pycontainerd/config.toml")
DEFAULT_ROOT = "/var/lib/pycontainerd"
DEFAULT_STATE = "/run/pycontainerd"
DEFAULT_ADDRESS = "/run/pycontainerd/pycontainerd.sock"
DEFAULT_MAX_MESSAGE_SIZE = 16 << 20  # bytes, as containerd


@dataclass
class GRPCConfig:
    """``[grpc]``: the unix socket (always) and an optional TCP listener (TLS only)."""

    address: str = DEFAULT_ADDRESS
    tcp_address: str = ""
    tcp_tls_ca: str = ""
    tcp_tls_cert: str = ""
    tcp_tls_key: str = ""
    uid: int = 0
    gid: int = 0
    max_recv_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    max_send_message_size: int = DEFAULT_MAX_MESSAGE_SIZE


@dataclass
class DebugConfig:
    """``[debug]``: log level (trace, debug, info, warn, error) and format (text, json);
    ``address`` (empty: off) serves the debug HTTP endpoint (:mod:`.server.debug`) on a
    unix socket (an absolute path, mode 0660, owned by ``uid``/``gid``) or on ``host:port``."""

    address: str = ""
    uid: int = 0
    gid: int = 0
    level: str = "info"
    format: str = "text"


@dataclass
class MetricsConfig:
    """``[metrics]``: Prometheus metrics over HTTP at ``http://<address>/v1/metrics``
    (``host:port``; empty: off); ``grpc_histogram`` adds the per-RPC latency histogram
    ``grpc_server_handling_seconds`` (:mod:`.server.metrics`)."""

    address: str = ""
    grpc_histogram: bool = False


@dataclass
class Config:
    """The whole daemon configuration. ``plugins`` maps plugin URI to its raw TOML table;
    each plugin turns its own table into its config dataclass at init."""

    version: int = 2
    root: str = DEFAULT_ROOT
    state: str = DEFAULT_STATE
    disabled_plugins: list[str] = field(default_factory=list)
    required_plugins: list[str] = field(default_factory=list)
    grpc: GRPCConfig = field(default_factory=GRPCConfig)
    debug: DebugConfig = field(default_factory=DebugConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    plugins: dict[str, dict[str, Any]] = field(default_factory=dict)


_SECTIONS = {"grpc": GRPCConfig, "debug": DebugConfig, "metrics": MetricsConfig}


def _section(name: str, cls: type, table: Any) -> Any:
    if not isinstance(table, dict):
        raise InvalidArgument(f"config: [{name}] must be a table")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise InvalidArgument(f"config: unknown option(s) in [{name}]: {', '.join(unknown)}")
    defaults = cls()
    for key, value in table.items():
        want = type(getattr(defaults, key))
        if not isinstance(value, want) or (want is int and isinstance(value, bool)):
            raise InvalidArgument(f"config: [{name}] {key} must be a {want.__name__}, not {quote(value)}")
    return cls(**table)


def from_dict(data: dict[str, Any]) -> Config:
    """Build a :class:`Config` from parsed TOML. Raises :class:`InvalidArgument` for an
    unknown key, a wrong version or a wrongly typed table."""
    data = dict(data)
    version = data.pop("version", 2)
    if version != 2:
        raise InvalidArgument(f"config: version {version} is not supported; use version = 2")
    cfg = Config()
    for key, value in data.items():
        if key in _SECTIONS:
            setattr(cfg, key, _section(key, _SECTIONS[key], value))
        elif key == "plugins":
            if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
                raise InvalidArgument('config: [plugins] must hold tables [plugins."<type>.<id>"]')
            cfg.plugins = {k: dict(v) for k, v in value.items()}
        elif key in ("root", "state"):
            if not isinstance(value, str) or not value:
                raise InvalidArgument(f"config: {key} must be a non-empty path")
            setattr(cfg, key, value)
        elif key in ("disabled_plugins", "required_plugins"):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise InvalidArgument(f"config: {key} must be a list of plugin names")
            setattr(cfg, key, list(value))
        else:
            raise InvalidArgument(f"config: unknown option {quote(key)}")
    return cfg


def load(path: Path | None) -> Config:
    """Load the config file; a missing file at the *default* path means all defaults.

    Raises:
        InvalidArgument: unreadable, not TOML, or invalid content (message names the file).
    """
    target = path or DEFAULT_CONFIG_PATH
    try:
        text = target.read_text()
    except FileNotFoundError:
        if path is None:
            return Config()
        raise InvalidArgument(f"config file {quote(str(target))} does not exist") from None
    except OSError as exc:
        raise InvalidArgument(f"config file {quote(str(target))}: {exc.strerror}") from exc
    try:
        return from_dict(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise InvalidArgument(f"config file {quote(str(target))}: {exc}") from exc
    except InvalidArgument as exc:
        raise InvalidArgument(f"config file {quote(str(target))}: {exc.context}") from exc
    except TypeError as exc:
        raise InvalidArgument(f"config file {quote(str(target))}: {exc}") from exc


def default_toml(plugin_configs: dict[str, Any]) -> str:
    """The default configuration as TOML, with ``plugin_configs`` (URI → default config
    dataclass instance) rendered under ``[plugins]``."""
    cfg = Config()
    data = dataclasses.asdict(cfg)
    data["plugins"] = {uri: dataclasses.asdict(c) for uri, c in sorted(plugin_configs.items())}
    return tomli_w.dumps(data)
