"""``io.containerd.snapshotter.v1.native``: snapshots as full directory copies under
``<root>/io.containerd.snapshotter.v1.native`` (or ``root_path``); works on any filesystem."""

from dataclasses import dataclass
from pathlib import Path

from pycontainerd.plugin import PluginType, Registration
from pycontainerd.snapshots.native import NativeSnapshotter
from pycontainerd.snapshots.types import host_platform


@dataclass
class Config:
    root_path: str = ""
    """Directory for snapshots and their metadata (default: the plugin's root)."""


def init(ic):
    ic.plugin.platforms.append(host_platform())
    root = Path(ic.config.root_path) if ic.config.root_path else ic.root
    ic.plugin.exports["root"] = str(root)
    return NativeSnapshotter(root)


registration = Registration(
    type=PluginType.SNAPSHOTTER, id="native", config=Config, init=init, close=NativeSnapshotter.close_sync
)
