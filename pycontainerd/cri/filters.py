"""CRI list filters (``PodSandboxFilter``, ``ContainerFilter``, ``ContainerStatsFilter``,
``PodSandboxStatsFilter``): every set field must match (AND).

- ``id`` / ``pod_sandbox_id``: a full id, or a prefix unique in the store (containerd
  normalises the filter through its id index, then compares exactly);
- ``state``: only when the wrapper message is set (``CONTAINER_CREATED`` is 0);
- ``label_selector``: every key present with exactly that value (``MatchLabels`` only).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

from ..api.cri.runtime.v1 import api_pb2 as cri
from ..errdefs import InvalidArgument
from .store import Container, Sandbox

Resolve = Callable[[str], "str | None"]
T = TypeVar("T")


def match_labels(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """True when every ``key: value`` of ``selector`` is in ``labels`` (an empty selector matches)."""
    return all(labels.get(k) == v for k, v in selector.items())


def normalize_id(value: str, resolve: Resolve | None) -> str:
    """``value`` expanded to the full id when it is a unique prefix; else unchanged."""
    if not value or resolve is None:
        return value
    try:
        return resolve(value) or value
    except InvalidArgument:  # ambiguous: compare as given (matches nothing unless exact)
        return value


def filter_sandboxes(items: Iterable[Sandbox], f: cri.PodSandboxFilter | None,
                     resolve: Resolve | None = None) -> list[Sandbox]:
    items = list(items)
    if f is None:
        return items
    want_id = normalize_id(f.id, resolve)
    out = []
    for sb in items:
        if want_id and sb.id != want_id:
            continue
        if f.HasField("state") and sb.state.to_cri() != f.state.state:
            continue
        if not match_labels(f.label_selector, sb.config.labels):
            continue
        out.append(sb)
    return out


def filter_containers(items: Iterable[Container], f: cri.ContainerFilter | None,
                      resolve: Resolve | None = None, resolve_sandbox: Resolve | None = None) -> list[Container]:
    items = list(items)
    if f is None:
        return items
    want_id = normalize_id(f.id, resolve)
    want_sb = normalize_id(f.pod_sandbox_id, resolve_sandbox)
    out = []
    for c in items:
        if want_id and c.id != want_id:
            continue
        if want_sb and c.sandbox_id != want_sb:
            continue
        if f.HasField("state") and c.state.to_cri() != f.state.state:
            continue
        if not match_labels(f.label_selector, c.config.labels):
            continue
        out.append(c)
    return out


def filter_container_stats(items: Iterable[Container], f: cri.ContainerStatsFilter | None,
                           resolve: Resolve | None = None, resolve_sandbox: Resolve | None = None) -> list[Container]:
    items = list(items)
    if f is None:
        return items
    want_id = normalize_id(f.id, resolve)
    want_sb = normalize_id(f.pod_sandbox_id, resolve_sandbox)
    return [c for c in items
            if (not want_id or c.id == want_id) and (not want_sb or c.sandbox_id == want_sb)
            and match_labels(f.label_selector, c.config.labels)]


def filter_sandbox_stats(items: Iterable[Sandbox], f: cri.PodSandboxStatsFilter | None,
                         resolve: Resolve | None = None) -> list[Sandbox]:
    items = list(items)
    if f is None:
        return items
    want_id = normalize_id(f.id, resolve)
    return [sb for sb in items
            if (not want_id or sb.id == want_id) and match_labels(f.label_selector, sb.config.labels)]


def chunks(items: list[T], size: int = 100) -> list[list[T]]:
    """``items`` in lists of at most ``size`` (none for an empty list), for the Stream* calls."""
    return [items[i:i + size] for i in range(0, len(items), size)]
