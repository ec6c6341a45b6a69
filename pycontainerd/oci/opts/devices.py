"""Device options: device nodes from the host, device cgroup rules, ``/dev/shm`` size."""

from __future__ import annotations

import copy
import os
import posixpath
import stat
from collections.abc import Iterable, Mapping
from typing import Any

from ...errdefs import InvalidArgument, quote
from ..spec import RWM, Spec
from .base import SpecContext, SpecOpt, _Flag, _int, _linux, _resources


def _permissions(p: str) -> str:
    if not isinstance(p, str) or not p or set(p) - set("rwm"):
        raise InvalidArgument(f"device permissions must be a combination of r, w and m, got {p!r}")
    return p


def _cgroup_rule(allow: bool, typ: str = "", major: int | None = None, minor: int | None = None, access: str = RWM):
    r: dict[str, Any] = {"allow": allow}
    if typ:
        r["type"] = typ
    if major is not None:
        r["major"] = major
    if minor is not None:
        r["minor"] = minor
    if access:
        r["access"] = access
    return r


def device_from_path(path: str) -> dict[str, Any] | None:
    """The ``linux.devices`` entry for the device node at ``path``; None if it is not a
    block or character device."""
    st = os.lstat(path)
    if stat.S_ISBLK(st.st_mode):
        typ = "b"
    elif stat.S_ISCHR(st.st_mode):
        typ = "c"
    else:
        return None
    return {
        "path": path,
        "type": typ,
        "major": os.major(st.st_rdev),
        "minor": os.minor(st.st_rdev),
        "fileMode": stat.S_IMODE(st.st_mode),
        "uid": st.st_uid,
        "gid": st.st_gid,
    }


_SKIP_DIRS = frozenset(("pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"))


def host_devices(path: str = "/dev", container_path: str = "") -> list[dict[str, Any]]:
    """Device nodes at ``path`` (recursively, skipping pts, shm, …; containerd's ``getDevices``)."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise InvalidArgument(f"error stating device path {quote(path)}: {exc.strerror}") from exc
    if not stat.S_ISDIR(st.st_mode):
        dev = device_from_path(path)
        if dev is None:
            raise InvalidArgument(f"{quote(path)}: not a device node")
        if container_path:
            dev["path"] = container_path
        return [dev]
    out = []
    for entry in sorted(os.scandir(path), key=lambda e: e.name):
        if entry.is_dir(follow_symlinks=False):
            if entry.name in _SKIP_DIRS:
                continue
            cp = posixpath.join(container_path, entry.name) if container_path else ""
            out += host_devices(entry.path, cp)
        elif entry.name == "console":
            continue
        else:
            try:
                dev = device_from_path(entry.path)
            except FileNotFoundError:
                continue
            if dev is None:
                continue
            if container_path:
                dev["path"] = posixpath.join(container_path, entry.name)
            out.append(dev)
    return out


def with_devices(device_path: str, container_path: str = "", permissions: str = RWM) -> SpecOpt:
    """Add the device at ``device_path`` (or every device below it) with a cgroup rule
    allowing ``permissions`` (containerd's ``WithDevices``)."""
    perms = _permissions(permissions)

    def _with_devices(spec: Spec, ctx: SpecContext) -> None:
        devs = host_devices(device_path, container_path)
        linux = _linux(spec)
        res = _resources(spec)
        linux["devices"] = list(linux.get("devices") or []) + devs
        res["devices"] = list(res.get("devices") or []) + [
            _cgroup_rule(True, d["type"], d["major"], d["minor"], perms) for d in devs
        ]

    return _with_devices


def with_linux_devices(devices: Iterable[Mapping[str, Any]]) -> SpecOpt:
    """Append ``linux.devices`` entries as given (no cgroup rule)."""
    items = []
    for d in devices:
        if not isinstance(d, Mapping) or not isinstance(d.get("path"), str) or d.get("type") not in ("c", "b", "u", "p"):
            raise InvalidArgument(f"device needs a path and a type of c, b, u or p, got {d!r}")
        items.append(copy.deepcopy(dict(d)))

    def _with_linux_devices(spec: Spec, ctx: SpecContext) -> None:
        linux = _linux(spec)
        linux["devices"] = list(linux.get("devices") or []) + copy.deepcopy(items)

    return _with_linux_devices


@_Flag
def with_all_devices_allowed(spec: Spec, ctx: SpecContext) -> None:
    """Allow read, write and mknod on every device (``WithAllDevicesAllowed``)."""
    _resources(spec)["devices"] = [_cgroup_rule(True)]


@_Flag
def with_parent_cgroup_devices(spec: Spec, ctx: SpecContext) -> None:
    """Inherit the device rules of the parent cgroup."""
    _resources(spec).pop("devices", None)


@_Flag
def with_host_devices(spec: Spec, ctx: SpecContext) -> None:
    """Every device node of the host's ``/dev`` (``WithHostDevices``)."""
    linux = _linux(spec)
    linux["devices"] = list(linux.get("devices") or []) + host_devices("/dev")


_DEFAULT_UNIX_DEVICES = (
    (1, 3),  # /dev/null
    (1, 8),  # /dev/random
    (1, 7),  # /dev/full
    (5, 0),  # /dev/tty
    (1, 5),  # /dev/zero
    (1, 9),  # /dev/urandom
    (5, 1),  # /dev/console
    (136, None),  # /dev/pts/*
    (5, 2),  # /dev/ptmx
)


@_Flag
def with_default_unix_devices(spec: Spec, ctx: SpecContext) -> None:
    """Allow the standard character devices (null, zero, random, tty, pts, …)."""
    res = _resources(spec)
    res["devices"] = list(res.get("devices") or []) + [
        _cgroup_rule(True, "c", major, minor) for major, minor in _DEFAULT_UNIX_DEVICES
    ]


def with_dev_shm_size(kb: int) -> SpecOpt:
    """Size of the ``/dev/shm`` tmpfs in KiB."""
    size = _int(kb, "/dev/shm size", 1)

    def _with_dev_shm_size(spec: Spec, ctx: SpecContext) -> None:
        for m in spec.get("mounts") or []:
            if posixpath.normpath(m.get("destination", "")) == "/dev/shm" and m.get("source") == "shm" and m.get("type") == "tmpfs":
                m["options"] = [o for o in m.get("options") or [] if not o.startswith("size=")] + [f"size={size}k"]
                return
        raise InvalidArgument("no /dev/shm mount specified")

    return _with_dev_shm_size
