"""Label rules shared by every object kind (containerd's ``labels.Validate``)."""

from __future__ import annotations

from collections.abc import Mapping

from .errdefs import InvalidArgument, quote

MAX_SIZE = 4096
"""Largest allowed ``len(key) + len(value)``, in bytes of UTF-8."""


def validate(key: str, value: str) -> None:
    """Raise :class:`InvalidArgument` if key and value together exceed 4096 bytes."""
    if len(key.encode()) + len(value.encode()) > MAX_SIZE:
        raise InvalidArgument(
            f"label key and value greater than maximum size ({MAX_SIZE} bytes), key: {key[:10]}"
        )


def validate_all(labels: Mapping[str, str]) -> dict[str, str]:
    """Validate every pair and return a plain ``dict`` copy."""
    for key, value in labels.items():
        validate(key, value)
    return dict(labels)


def apply_field_paths(
    current: Mapping[str, str], incoming: Mapping[str, str], paths: list[str], kind: str,
    labels_context: str = "",
) -> dict[str, str]:
    """Merge label updates the way containerd's Update RPCs read ``update_mask``.

    ``labels.<key>`` sets ``<key>`` from ``incoming`` (deleting it when absent or empty);
    ``labels`` replaces the whole map; an empty ``paths`` also replaces the whole map.
    Any other path raises :class:`InvalidArgument` naming ``kind``; an oversized label
    raises :class:`InvalidArgument`, prefixed with ``labels_context`` when given
    (containerd's ``info.Labels: …``).
    """
    result = _merge(current, incoming, paths, kind)
    try:
        return validate_all(result)
    except InvalidArgument as exc:
        if not labels_context:
            raise
        raise InvalidArgument(f"{labels_context}: {exc.context}") from exc


def _merge(current: Mapping[str, str], incoming: Mapping[str, str], paths: list[str], kind: str) -> dict[str, str]:
    result = dict(current)
    if not paths:
        return {k: v for k, v in incoming.items() if v}
    for path in paths:
        if path == "labels":
            result = dict(incoming)
        elif path.startswith("labels."):
            key = path[len("labels.") :]
            value = incoming.get(key, "")
            if value:
                result[key] = value
            else:
                result.pop(key, None)
        else:
            raise InvalidArgument(f"cannot update {quote(path)} field on {kind}")
    return {k: v for k, v in result.items() if v}
