"""Capability options: set, add, drop, ambient, and this process's own set."""

from __future__ import annotations

from collections.abc import Iterable

from ...errdefs import InvalidArgument
from ..spec import KNOWN_CAPS, Spec
from .base import SpecContext, SpecOpt, _Flag, _capabilities, _set, _strings


def _caps(caps: Iterable[str]) -> list[str]:
    values = _strings(caps, "capabilities")
    for c in values:
        if not c.startswith("CAP_"):
            raise InvalidArgument(f"capabilities must be specified with 'CAP_' prefix, got {c!r}")
    return values


_CAP_SETS = ("bounding", "effective", "permitted")


def with_capabilities(caps: Iterable[str]) -> SpecOpt:
    """Bounding, effective and permitted sets become ``caps``."""
    values = _caps(caps)

    def _with_capabilities(spec: Spec, ctx: SpecContext) -> None:
        c = _capabilities(spec)
        for k in _CAP_SETS:
            _set(c, k, list(values))

    return _with_capabilities


def with_added_capabilities(caps: Iterable[str]) -> SpecOpt:
    values = _caps(caps)

    def _with_added_capabilities(spec: Spec, ctx: SpecContext) -> None:
        c = _capabilities(spec)
        for k in _CAP_SETS:
            cur = list(c.get(k) or [])
            cur += [v for v in values if v not in cur]
            _set(c, k, cur)

    return _with_added_capabilities


def with_dropped_capabilities(caps: Iterable[str]) -> SpecOpt:
    values = set(_caps(caps))

    def _with_dropped_capabilities(spec: Spec, ctx: SpecContext) -> None:
        c = _capabilities(spec)
        for k in _CAP_SETS:
            _set(c, k, [v for v in c.get(k) or [] if v not in values])

    return _with_dropped_capabilities


def with_ambient_capabilities(caps: Iterable[str]) -> SpecOpt:
    values = _caps(caps)

    def _with_ambient_capabilities(spec: Spec, ctx: SpecContext) -> None:
        c = _capabilities(spec)
        _set(c, "inheritable", list(values))
        _set(c, "ambient", list(values))

    return _with_ambient_capabilities


def current_capabilities(status: str = "/proc/self/status") -> list[str]:
    """The effective capabilities of this process, by name (``pkg/cap.Current``)."""
    with open(status, encoding="ascii", errors="replace") as f:
        for line in f:
            if line.startswith("CapEff:"):
                bits = int(line.split(":", 1)[1].strip(), 16)
                return [name for i, name in enumerate(KNOWN_CAPS) if bits >> i & 1]
    return []


@_Flag
def with_all_current_capabilities(spec: Spec, ctx: SpecContext) -> None:
    """The caller's effective capabilities (``WithAllCurrentCapabilities``)."""
    with_capabilities(current_capabilities())(spec, ctx)


@_Flag
def with_all_known_capabilities(spec: Spec, ctx: SpecContext) -> None:
    with_capabilities(KNOWN_CAPS)(spec, ctx)
