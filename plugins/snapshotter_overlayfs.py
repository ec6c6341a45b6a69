"""``io.containerd.snapshotter.v1.overlayfs``: the overlayfs snapshotter under
``<root>/io.containerd.snapshotter.v1.overlayfs`` (or ``root_path``). Init fails — the
plugin shows ``error`` with the reason — when overlayfs cannot be mounted there."""

from dataclasses import dataclass
from pathlib import Path

from pycontainerd.plugin import PluginType, Registration
from pycontainerd.snapshots.overlay import OverlaySnapshotter
from pycontainerd.snapshots.types import host_platform


@dataclass
class Config:
    root_path: str = ""
    """Directory for snapshots and their metadata (default: the plugin's root)."""
    upperdir_label: bool = False
    """Add label ``containerd.io/snapshot/overlay.upperdir`` (the upper dir's path) to infos."""


def init(ic):
    ic.plugin.platforms.append(host_platform())
    root = Path(ic.config.root_path) if ic.config.root_path else ic.root
    ic.plugin.exports["root"] = str(root)
    return OverlaySnapshotter(root, upperdir_label=ic.config.upperdir_label)


registration = Registration(
    type=PluginType.SNAPSHOTTER, id="overlayfs", config=Config, init=init, close=OverlaySnapshotter.close_sync
)
