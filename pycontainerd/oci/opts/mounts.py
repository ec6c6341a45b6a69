"""Root and mount options: rootfs path, read-only root, mounts, writable sysfs and cgroupfs,
masked and read-only paths."""

from __future__ import annotations

import copy
import posixpath
from collections.abc import Iterable, Mapping
from typing import Any

from ...errdefs import InvalidArgument
from ..spec import Spec
from .base import SpecContext, SpecOpt, _Flag, _linux, _set, _strings


def with_rootfs_path(path: str) -> SpecOpt:
    def _with_rootfs_path(spec: Spec, ctx: SpecContext) -> None:
        spec.setdefault("root", {})["path"] = path

    return _with_rootfs_path


@_Flag
def with_readonly_rootfs(spec: Spec, ctx: SpecContext) -> None:
    """Mount the root filesystem read-only (``WithRootFSReadonly``)."""
    spec.setdefault("root", {"path": ""})["readonly"] = True


def _mount(m: Any) -> dict[str, Any]:
    if not isinstance(m, Mapping):
        raise InvalidArgument(f"mount must be a mapping, got {m!r}")
    dest = m.get("destination")
    if not isinstance(dest, str) or not dest.startswith("/"):
        raise InvalidArgument(f"mount destination must be an absolute path, got {dest!r}")
    out: dict[str, Any] = {"destination": dest}
    for k in ("type", "source"):
        v = m.get(k) or ""
        if not isinstance(v, str):
            raise InvalidArgument(f"mount {k} must be a string, got {v!r}")
        _set(out, k, v)
    _set(out, "options", _strings(m.get("options"), "mount options"))
    for k, v in m.items():  # uidMappings/gidMappings and future fields pass through
        if k not in out and k not in ("type", "source", "options"):
            out[k] = copy.deepcopy(v)
    return out


def with_mounts(mounts: Iterable[Mapping[str, Any]]) -> SpecOpt:
    """Add mounts; one with the destination of an existing mount replaces it."""
    items = [_mount(m) for m in mounts]

    def _with_mounts(spec: Spec, ctx: SpecContext) -> None:
        current = list(spec.get("mounts") or [])
        for m in items:
            dest = posixpath.normpath(m["destination"])
            current = [c for c in current if posixpath.normpath(c.get("destination", "")) != dest]
            current.append(copy.deepcopy(m))
        _set(spec, "mounts", current)

    return _with_mounts


def without_mounts(*destinations: str) -> SpecOpt:
    """Remove the mounts at these destinations (``WithoutMounts``)."""
    dests = set(destinations)

    def _without_mounts(spec: Spec, ctx: SpecContext) -> None:
        kept = [m for m in spec.get("mounts") or [] if posixpath.normpath(m.get("destination", "")) not in dests]
        _set(spec, "mounts", kept)

    return _without_mounts


def _writeable(fstype: str) -> SpecOpt:
    def opt(spec: Spec, ctx: SpecContext) -> None:
        for m in spec.get("mounts") or []:
            if m.get("type") == fstype and m.get("options"):
                m["options"] = ["rw" if o == "ro" else o for o in m["options"]]

    return opt


with_writeable_sysfs = _Flag(_writeable("sysfs"))
with_writeable_sysfs.__name__ = "with_writeable_sysfs"
with_writeable_cgroupfs = _Flag(_writeable("cgroup"))
with_writeable_cgroupfs.__name__ = "with_writeable_cgroupfs"


def with_masked_paths(paths: Iterable[str] | None) -> SpecOpt:
    values = _strings(paths, "masked paths")

    def _with_masked_paths(spec: Spec, ctx: SpecContext) -> None:
        _set(_linux(spec), "maskedPaths", list(values))

    return _with_masked_paths


def with_readonly_paths(paths: Iterable[str] | None) -> SpecOpt:
    values = _strings(paths, "readonly paths")

    def _with_readonly_paths(spec: Spec, ctx: SpecContext) -> None:
        _set(_linux(spec), "readonlyPaths", list(values))

    return _with_readonly_paths
