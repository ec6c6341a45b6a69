"""The frame of every spec option: :class:`SpecContext`, :func:`generate`, :func:`apply`,
:func:`compose`, the limits options check against, and the small helpers that reach into
the spec's ``process`` and ``linux`` sections."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ...errdefs import InvalidArgument
from ..spec import Spec, default_spec


MAX_ID = 2**31 - 1
"""runc requires uid and gid ≤ MaxInt32; containerd follows it."""
OOM_SCORE_ADJ_MIN = -1000
OOM_SCORE_ADJ_MAX = 1000
DEFAULT_CPU_PERIOD = 100000

RLIMIT_TYPES = frozenset(
    "RLIMIT_" + n
    for n in (
        "AS CORE CPU DATA FSIZE LOCKS MEMLOCK MSGQUEUE NICE NOFILE NPROC RSS RTPRIO RTTIME "
        "SIGPENDING STACK"
    ).split()
)


@dataclass
class SpecContext:
    """What options may consult besides the spec.

    ``image_config``: the image's config JSON (the whole ``application/vnd.oci.image.config``
    document or just its ``config`` object). ``rootfs``: host path of the container's root
    filesystem, where ``/etc/passwd`` and ``/etc/group`` are read.
    """

    namespace: str
    id: str
    image_config: Mapping[str, Any] | None = None
    rootfs: str | None = None


SpecOpt = Callable[[Spec, SpecContext], None]


class _Flag:
    """An option that is also its own constructor: ``opt`` and ``opt()`` are the same."""

    def __init__(self, fn: SpecOpt) -> None:
        self._fn = fn
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any) -> Any:
        if not args:
            return self
        return self._fn(*args)

    def __repr__(self) -> str:
        return f"<spec option {self._fn.__name__}>"


def generate(
    namespace: str,
    container_id: str,
    *opts: SpecOpt,
    image_config: Mapping[str, Any] | None = None,
    rootfs: str | os.PathLike[str] | None = None,
) -> Spec:
    """containerd's default spec for ``namespace``/``container_id`` with ``opts`` applied in order."""
    spec = default_spec(namespace, container_id)
    ctx = SpecContext(namespace, container_id, image_config, os.fspath(rootfs) if rootfs is not None else None)
    apply(spec, ctx, *opts)
    return spec


def apply(spec: Spec, ctx: SpecContext, *opts: SpecOpt) -> None:
    """Apply ``opts`` to ``spec`` in order (containerd's ``ApplyOpts``)."""
    for opt in opts:
        if not callable(opt):
            raise InvalidArgument(f"spec option {opt!r} is not callable")
        opt(spec, ctx)


def compose(*opts: SpecOpt) -> SpecOpt:
    """One option that applies ``opts`` in order."""

    def _compose(spec: Spec, ctx: SpecContext) -> None:
        apply(spec, ctx, *opts)

    return _compose


# --- helpers ------------------------------------------------------------------------------


def _process(spec: Spec) -> dict[str, Any]:
    return spec.setdefault("process", {"user": {"uid": 0, "gid": 0}, "cwd": ""})


def _linux(spec: Spec) -> dict[str, Any]:
    return spec.setdefault("linux", {})


def _resources(spec: Spec) -> dict[str, Any]:
    return _linux(spec).setdefault("resources", {})


def _cpu(spec: Spec) -> dict[str, Any]:
    return _resources(spec).setdefault("cpu", {})


def _user(spec: Spec) -> dict[str, Any]:
    return _process(spec).setdefault("user", {"uid": 0, "gid": 0})


def _capabilities(spec: Spec) -> dict[str, Any]:
    return _process(spec).setdefault("capabilities", {})


def _set(d: dict[str, Any], k: str, v: Any) -> None:
    """Set ``d[k]``, or drop the key for an empty value (Go's ``omitempty``)."""
    if v is None or v == "" or v is False or (isinstance(v, (list, dict)) and not v):
        d.pop(k, None)
    else:
        d[k] = v


def _strings(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise InvalidArgument(f"{what} must be a list of strings, not {type(value).__name__}")
    out = list(value)
    for v in out:
        if not isinstance(v, str):
            raise InvalidArgument(f"{what} must be a list of strings, got {v!r}")
    return out


def _int(value: Any, what: str, lo: int | None = None, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{what} must be an integer, not {value!r}")
    if lo is not None and value < lo:
        raise InvalidArgument(f"{what} must be at least {lo}, got {value}")
    if hi is not None and value > hi:
        raise InvalidArgument(f"{what} must be at most {hi}, got {value}")
    return value


def _str_map(value: Any, what: str) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise InvalidArgument(f"{what} must be a mapping of strings")
    for k, v in value.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise InvalidArgument(f"{what} must map strings to strings, got {k!r}: {v!r}")
    return dict(value)
