"""What the daemon says about itself: its persistent server UUID and its plugins.

The UUID is created once per ``--root`` and kept in
``<root>/io.containerd.grpc.v1.introspection/uuid`` (as containerd keeps it), written
atomically so a crash leaves the old value or the new one, never a torn file.
"""

from __future__ import annotations

import uuid as uuid_mod
from dataclasses import dataclass, field
from pathlib import Path

from . import filters
from .fsutil import write_file_atomic
from .plugin import Plugin, PluginSet


def server_uuid(directory: Path) -> str:
    """The UUID stored in ``directory/uuid``, created on first use.

    A file that does not hold a valid UUID is replaced by a new one.
    """
    path = directory / "uuid"
    try:
        text = path.read_text().strip()
        return str(uuid_mod.UUID(text))
    except (FileNotFoundError, ValueError):
        pass
    directory.mkdir(parents=True, exist_ok=True, mode=0o711)
    value = str(uuid_mod.uuid4())
    write_file_atomic(path, value.encode(), mode=0o644)
    return value


@dataclass
class PluginInfo:
    """A plugin as the Introspection service reports it (containerd ``Plugin`` message)."""

    type: str
    id: str
    requires: list[str]
    platforms: list[dict[str, str]] = field(default_factory=list)
    exports: dict[str, str] = field(default_factory=dict)
    capabilities: list[str] = field(default_factory=list)
    error: BaseException | None = None


def _adaptor(info: PluginInfo) -> filters.Adaptor:
    fields = {"type": info.type, "id": info.id}
    return lambda path: (fields.get(path[0]) or None) if len(path) == 1 else None


def list_plugins(plugins: PluginSet, filter_texts: list[str]) -> list[PluginInfo]:
    """Every initialised plugin (ok, skipped or failed) matching the containerd filters
    (fields ``type`` and ``id``). Raises :class:`InvalidArgument` for a bad filter."""
    match = filters.parse_all(filter_texts)
    out = []
    for plugin in plugins:
        info = _info(plugin)
        if match.match(_adaptor(info)):
            out.append(info)
    return out


def _info(plugin: Plugin) -> PluginInfo:
    reg = plugin.registration
    return PluginInfo(
        type=reg.type,
        id=reg.id,
        requires=list(reg.requires),
        platforms=plugin.platforms,
        exports=plugin.exports,
        capabilities=plugin.capabilities,
        error=plugin.error,
    )
