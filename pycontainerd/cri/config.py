"""The CRI plugin's configuration: ``[plugins."io.containerd.grpc.v1.cri"]``, with the keys
and meanings of containerd's config version 2.

Shape (defaults shown)::

    [plugins."io.containerd.grpc.v1.cri"]
      sandbox_image = "registry.k8s.io/pause:3.6"
      stream_server_address = "127.0.0.1"
      stream_server_port = "0"            # "0": pick a free port
      stream_idle_timeout = "4h0m0s"       # a streaming connection with no traffic is closed
      enable_tls_streaming = false         # https:// URLs; needs the key pair below
      [plugins."io.containerd.grpc.v1.cri".x509_key_pair_streaming]
        tls_cert_file = ""
        tls_key_file = ""
      restrict_oom_score_adj = false       # clamp scores below the daemon's own
      max_container_log_line_size = 16384  # longer lines are split into partial (P) lines
      [plugins."io.containerd.grpc.v1.cri".containerd]
        snapshotter = "overlayfs"
        default_runtime_name = "runc"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
          runtime_type = "io.containerd.runc.v2"
          [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
            BinaryName = ""      # the runc binary
            Root = ""            # runc --root
            SystemdCgroup = false  # the systemd cgroup driver is not supported: true is refused
      [plugins."io.containerd.grpc.v1.cri".cni]
        bin_dir = "/opt/cni/bin:/usr/lib/cni"   # one directory or a CNI_PATH-style list
        conf_dir = "/etc/cni/net.d"
        max_conf_num = 1
      [plugins."io.containerd.grpc.v1.cri".registry]
        config_path = ""     # a certs.d-style directory of <host>/hosts.toml

Unknown keys are refused with :class:`~pycontainerd.errdefs.InvalidArgument` naming them,
as every other plugin table is.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from ..errdefs import InvalidArgument, quote

DEFAULT_SANDBOX_IMAGE = "registry.k8s.io/pause:3.6"
DEFAULT_RUNTIME_TYPE = "io.containerd.runc.v2"
RUNC_OPTION_KEYS = ("BinaryName", "Root", "SystemdCgroup", "NoPivotRoot", "NoNewKeyring", "ShimCgroup",
                    "IoUid", "IoGid", "CriuPath")
"""``options`` keys of a runc runtime (containerd's ``runc.v1.Options`` in TOML spelling)."""


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds of a Go duration string (``"4h0m0s"``, ``"90s"``, ``"1.5h"``; ``"0"`` is 0).
    Raises :class:`InvalidArgument`."""
    text = text.strip()
    if text in ("0", ""):
        return 0.0
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text):
        raise InvalidArgument(f"bad duration {text!r}: use Go's form, e.g. \"4h0m0s\" or \"30s\"")
    return total


def _table(cls: type, value: Any, where: str) -> Any:
    """``cls`` from a TOML table (a dict) or an instance; unknown keys are refused."""
    if isinstance(value, cls):
        return value
    if not isinstance(value, dict):
        raise InvalidArgument(f"[{where}] must be a table")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(value) - known)
    if unknown:
        raise InvalidArgument(f"unknown option(s) {', '.join(unknown)} in [{where}]; known: {', '.join(sorted(known))}")
    return cls(**value)


@dataclass
class RuntimeEntry:
    """``containerd.runtimes.<name>``: a runtime handler."""

    runtime_type: str = DEFAULT_RUNTIME_TYPE
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.options, dict):
            raise InvalidArgument("runtime options must be a table")
        unknown = sorted(set(self.options) - set(RUNC_OPTION_KEYS))
        if unknown:
            raise InvalidArgument(f"unknown runtime option(s) {', '.join(unknown)}; known: {', '.join(RUNC_OPTION_KEYS)}")


@dataclass
class ContainerdConfig:
    """``containerd``: snapshotter and runtime handlers."""

    snapshotter: str = "overlayfs"
    default_runtime_name: str = "runc"
    runtimes: dict[str, Any] = field(default_factory=lambda: {"runc": RuntimeEntry()})

    def __post_init__(self) -> None:
        if not isinstance(self.runtimes, dict):
            raise InvalidArgument("containerd.runtimes must be a table of tables")
        self.runtimes = {name: _table(RuntimeEntry, value, f"containerd.runtimes.{name}")
                         for name, value in self.runtimes.items()}
        if self.default_runtime_name not in self.runtimes:
            raise InvalidArgument(f"default_runtime_name {quote(self.default_runtime_name)} is not in "
                                  f"containerd.runtimes ({', '.join(sorted(self.runtimes)) or 'none'})")


@dataclass
class CNIConfig:
    """``cni``: where plugin binaries and network configurations are."""

    bin_dir: str = "/opt/cni/bin:/usr/lib/cni"
    conf_dir: str = "/etc/cni/net.d"
    max_conf_num: int = 1

    def bin_dirs(self) -> list[str]:
        return [d for d in self.bin_dir.split(":") if d]


@dataclass
class RegistryConfig:
    """``registry``: ``config_path`` is a directory of ``<host>/hosts.toml`` (containerd's
    ``certs.d`` layout) used for every pull, the sandbox image's included."""

    config_path: str = ""


@dataclass
class X509KeyPair:
    """``x509_key_pair_streaming``: PEM files of the streaming server's TLS certificate and key."""

    tls_cert_file: str = ""
    tls_key_file: str = ""


@dataclass
class CRIConfig:
    """``[plugins."io.containerd.grpc.v1.cri"]`` (see the module doc)."""

    sandbox_image: str = DEFAULT_SANDBOX_IMAGE
    stream_server_address: str = "127.0.0.1"
    stream_server_port: str = "0"
    stream_idle_timeout: str = "4h0m0s"
    enable_tls_streaming: bool = False
    x509_key_pair_streaming: Any = field(default_factory=X509KeyPair)
    restrict_oom_score_adj: bool = False
    max_container_log_line_size: int = 16384
    containerd: Any = field(default_factory=ContainerdConfig)
    cni: Any = field(default_factory=CNIConfig)
    registry: Any = field(default_factory=RegistryConfig)

    def __post_init__(self) -> None:
        self.containerd = _table(ContainerdConfig, self.containerd, "containerd")
        self.cni = _table(CNIConfig, self.cni, "cni")
        self.registry = _table(RegistryConfig, self.registry, "registry")
        self.x509_key_pair_streaming = _table(X509KeyPair, self.x509_key_pair_streaming, "x509_key_pair_streaming")
        for name, want in (("sandbox_image", str), ("stream_server_address", str), ("stream_server_port", str),
                           ("stream_idle_timeout", str), ("enable_tls_streaming", bool),
                           ("restrict_oom_score_adj", bool), ("max_container_log_line_size", int)):
            value = getattr(self, name)
            if not isinstance(value, want) or (want is int and isinstance(value, bool)):
                raise InvalidArgument(f"{name} must be a {want.__name__}, not {quote(value)}")
        if not self.stream_server_port.isdigit() or int(self.stream_server_port) > 65535:
            raise InvalidArgument(f"stream_server_port must be a port number as a string, not {quote(self.stream_server_port)}")
        parse_duration(self.stream_idle_timeout)
        if self.enable_tls_streaming and not (self.x509_key_pair_streaming.tls_cert_file
                                              and self.x509_key_pair_streaming.tls_key_file):
            raise InvalidArgument("enable_tls_streaming needs x509_key_pair_streaming.tls_cert_file and tls_key_file")
        if not isinstance(self.cni.max_conf_num, int) or self.cni.max_conf_num < 0:
            raise InvalidArgument("cni.max_conf_num must be a non-negative integer (0: every network)")

    def runtime(self, handler: str) -> tuple[str, RuntimeEntry]:
        """``(name, entry)`` of a runtime handler (``""`` is the default one).

        Raises :class:`~pycontainerd.errdefs.NotFound` for an unknown handler.
        """
        from ..errdefs import NotFound

        name = handler or self.containerd.default_runtime_name
        entry = self.containerd.runtimes.get(name)
        if entry is None:
            raise NotFound(f"no runtime for {quote(name)} is configured")
        return name, entry

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
