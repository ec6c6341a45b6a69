"""Namespace options: host namespaces, joined namespaces, user namespace maps, the cgroup
namespace on a unified hierarchy."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ...errdefs import InvalidArgument
from ..spec import CGROUP_UNIFIED, NAMESPACE_TYPES, Spec, cgroup_mode
from .base import SpecContext, SpecOpt, _int, _linux, _set


def _ns_type(ns: str) -> str:
    if ns not in NAMESPACE_TYPES:
        raise InvalidArgument(f"unknown Linux namespace type {ns!r} (one of {', '.join(NAMESPACE_TYPES)})")
    return ns


def with_host_namespace(ns: str) -> SpecOpt:
    """Share the host's namespace of type ``ns`` (remove it from the spec)."""
    typ = _ns_type(ns)

    def _with_host_namespace(spec: Spec, ctx: SpecContext) -> None:
        linux = _linux(spec)
        _set(linux, "namespaces", [n for n in linux.get("namespaces") or [] if n.get("type") != typ])

    return _with_host_namespace


def with_linux_namespace(ns: str, path: str = "") -> SpecOpt:
    """A new namespace of type ``ns``, or join the one at ``path``; replaces one of that type."""
    typ = _ns_type(ns)
    if not isinstance(path, str) or (path and not path.startswith("/")):
        raise InvalidArgument(f"namespace path must be absolute, got {path!r}")
    entry = {"type": typ, "path": path} if path else {"type": typ}

    def _with_linux_namespace(spec: Spec, ctx: SpecContext) -> None:
        linux = _linux(spec)
        nss = list(linux.get("namespaces") or [])
        for i, n in enumerate(nss):
            if n.get("type") == typ:
                nss[i] = dict(entry)
                break
        else:
            nss.append(dict(entry))
        linux["namespaces"] = nss

    return _with_linux_namespace


def with_user_namespace(uid_maps: Iterable[Mapping[str, int]], gid_maps: Iterable[Mapping[str, int]]) -> SpecOpt:
    """A user namespace with these ``{containerID, hostID, size}`` mappings (appended)."""

    def norm(maps, what):
        out = []
        for m in maps:
            if not isinstance(m, Mapping):
                raise InvalidArgument(f"{what} must be mappings")
            out.append({k: _int(m.get(k), f"{what} {k}", 0, 2**32 - 1) for k in ("containerID", "hostID", "size")})
        return out

    uids, gids = norm(uid_maps, "uid mapping"), norm(gid_maps, "gid mapping")

    def _with_user_namespace(spec: Spec, ctx: SpecContext) -> None:
        linux = _linux(spec)
        if not any(n.get("type") == "user" for n in linux.get("namespaces") or []):
            linux["namespaces"] = list(linux.get("namespaces") or []) + [{"type": "user"}]
        _set(linux, "uidMappings", list(linux.get("uidMappings") or []) + uids)
        _set(linux, "gidMappings", list(linux.get("gidMappings") or []) + gids)

    return _with_user_namespace


def with_cgroup_namespace_if_unified(mode: str | None = None) -> SpecOpt:
    """A private cgroup namespace on a cgroup v2-only host (what the CRI does for
    non-privileged containers); nothing on v1 or hybrid hosts. ``mode`` overrides detection."""

    def _with_cgroup_namespace_if_unified(spec: Spec, ctx: SpecContext) -> None:
        if (mode or cgroup_mode()) == CGROUP_UNIFIED:
            with_linux_namespace("cgroup")(spec, ctx)

    return _with_cgroup_namespace_if_unified
