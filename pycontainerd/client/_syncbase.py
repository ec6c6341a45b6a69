"""Runtime support of the generated sync client (``pycontainerd.client._sync``).

Each generated class wraps one async object (``_async``) and the :class:`~._portal.Portal`
it runs on (``_portal``). Values crossing the boundary are converted: async objects that
have a sync twin come back wrapped (:func:`wrap`), sync wrappers passed in go to the async
side unwrapped (:func:`unwrap`). Attributes the generator did not write (plain instance
attributes such as ``container.id`` or ``image.name``) are read through ``__getattr__``.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

from ._portal import Portal

_TWINS: dict[type, type] = {}
"""async class → its generated sync class (filled by :func:`register`)."""


def register(async_cls: type, sync_cls: type) -> None:
    _TWINS[async_cls] = sync_cls


def wrap(value: Any, portal: Portal) -> Any:
    """``value`` with async objects replaced by their sync twins (also inside lists,
    tuples and dict values)."""
    cls = _TWINS.get(type(value))
    if cls is not None:
        return cls._from_async(value, portal)
    for base, twin in _TWINS.items():
        if isinstance(value, base):
            return twin._from_async(value, portal)
    if isinstance(value, list):
        return [wrap(v, portal) for v in value]
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return tuple(wrap(v, portal) for v in value)
    if isinstance(value, dict):
        return {k: wrap(v, portal) for k, v in value.items()}
    return value


def unwrap(value: Any) -> Any:
    """The async object behind a sync wrapper (also inside lists and tuples)."""
    if isinstance(value, SyncWrapper):
        return value._async
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return tuple(unwrap(v) for v in value)
    return value


class SyncWrapper:
    """Base of the generated sync classes."""

    _async: Any
    _portal: Portal

    @classmethod
    def _from_async(cls, obj: Any, portal: Portal) -> Any:
        self = cls.__new__(cls)
        self._async = obj
        self._portal = portal
        return self

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_async", "_portal"):
            raise AttributeError(name)
        value = getattr(self._async, name)
        if inspect.iscoroutinefunction(value):
            @functools.wraps(value)
            def call(*args: Any, **kwargs: Any) -> Any:
                return wrap(self._portal.call(value(*unwrap(args), **{k: unwrap(v) for k, v in kwargs.items()})),
                            self._portal)

            return call
        return wrap(value, self._portal)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SyncWrapper):
            return self._async == other._async
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._async)

    def __repr__(self) -> str:
        text = repr(self._async)
        return text.replace(f"{type(self._async).__name__}", type(self).__name__, 1)
