"""Other ``linux`` options: annotations, sysctls, seccomp."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from typing import Any

from ...errdefs import InvalidArgument, quote
from .. import seccomp as seccomp_mod
from ..spec import Spec
from .base import SpecContext, SpecOpt, _Flag, _linux, _str_map


def with_annotations(annotations: Mapping[str, str]) -> SpecOpt:
    """Add or replace annotations."""
    values = _str_map(annotations, "annotations")

    def _with_annotations(spec: Spec, ctx: SpecContext) -> None:
        spec.setdefault("annotations", {}).update(values)

    return _with_annotations


def with_sysctls(sysctls: Mapping[str, str]) -> SpecOpt:
    """Add or replace ``linux.sysctl`` entries (runc accepts only namespaced ones)."""
    values = _str_map(sysctls, "sysctls")
    for k in values:
        if not k or k.startswith(".") or "/" in k or ".." in k:
            raise InvalidArgument(f"invalid sysctl name {k!r}")

    def _with_sysctls(spec: Spec, ctx: SpecContext) -> None:
        _linux(spec).setdefault("sysctl", {}).update(values)

    return _with_sysctls


def with_seccomp(profile: Mapping[str, Any] | str | os.PathLike[str] | None = None, **default_kw: Any) -> SpecOpt:
    """Set the seccomp profile: containerd's default for the spec's capabilities when
    ``profile`` is None (apply it after the capability options), else the given
    ``LinuxSeccomp`` object or the path of a JSON file holding one (``seccomp.WithProfile``).
    ``default_kw`` (``arch``, ``kernel_release``) go to :func:`seccomp.default_profile`."""
    loaded: dict[str, Any] | None = None
    if isinstance(profile, (str, os.PathLike)):
        try:
            with open(profile, "rb") as f:
                loaded = json.load(f)
        except OSError as exc:
            raise InvalidArgument(f"cannot load seccomp profile {quote(os.fspath(profile))}: {exc.strerror}") from exc
        except ValueError as exc:
            raise InvalidArgument(f"decoding seccomp profile failed {quote(os.fspath(profile))}: {exc}") from exc
    elif profile is not None:
        if not isinstance(profile, Mapping):
            raise InvalidArgument("seccomp profile must be a mapping or a file path")
        loaded = copy.deepcopy(dict(profile))
    if loaded is not None and (not isinstance(loaded, dict) or not isinstance(loaded.get("defaultAction"), str)):
        raise InvalidArgument("seccomp profile must be a JSON object with a defaultAction")

    def _with_seccomp(spec: Spec, ctx: SpecContext) -> None:
        value = copy.deepcopy(loaded) if loaded is not None else seccomp_mod.default_profile(spec, **default_kw)
        _linux(spec)["seccomp"] = value

    return _with_seccomp


@_Flag
def with_seccomp_unconfined(spec: Spec, ctx: SpecContext) -> None:
    _linux(spec).pop("seccomp", None)
