"""A bounded memo for values computed from immutable keys.

The daemon's read paths turn the same stored bytes into the same records, and the same
records into the same protobuf messages, call after call. Keyed by what the value is
computed from (a record's stored bytes, an immutable record), a memo can never answer
with something stale: a write stores other bytes, which make another key.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class Memo(Generic[V]):
    """``get(key, make)``: ``make()`` the first time, the kept value after; at most ``size``
    values, the oldest dropped first. Safe from several threads (a value may be made twice)."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._values: dict[Hashable, V] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, make: Callable[[], V]) -> V:
        value = self._values.get(key)
        if value is None:
            value = make()
            with self._lock:
                while len(self._values) >= self.size:
                    del self._values[next(iter(self._values))]
                self._values[key] = value
        return value

    def current(self, key: Hashable, source: object, make: Callable[[], V]) -> V:
        """The value kept under ``key`` if it was made from ``source`` (compared with
        ``==``), else ``make()``, kept for ``source`` instead: one entry per key, for its
        newest source — what a record's slot (namespace, id) needs, whose stored bytes
        change with each write."""
        kept = self._values.get(key)
        if kept is not None and kept[0] == source:  # type: ignore[index]
            return kept[1]  # type: ignore[index]
        value = make()
        with self._lock:
            self._values.pop(key, None)
            while len(self._values) >= self.size:
                del self._values[next(iter(self._values))]
            self._values[key] = (source, value)  # type: ignore[assignment]
        return value

    def discard(self, key: Hashable) -> None:
        """Forget ``key`` (its record is gone)."""
        with self._lock:
            self._values.pop(key, None)

    def __len__(self) -> int:
        return len(self._values)


class ByIdentity(Generic[V]):
    """A value per live object, dropped when the object is: ``get(obj, make)`` makes it the
    first time for that object. For values derived from immutable records whose owner
    replaces or drops them (a record's message): nothing outlives its record."""

    def __init__(self) -> None:
        self._values: dict[int, tuple[weakref.ref, V]] = {}

    def get(self, obj: object, make: Callable[[], V]) -> V:
        key = id(obj)
        kept = self._values.get(key)
        if kept is not None and kept[0]() is obj:
            return kept[1]
        value = make()
        self._values[key] = (weakref.ref(obj, lambda _ref, key=key: self._drop(key, _ref)), value)
        return value

    def _drop(self, key: int, ref: weakref.ref) -> None:
        kept = self._values.get(key)
        if kept is not None and kept[0] is ref:  # not a newer object that took the same id
            self._values.pop(key, None)

    def __len__(self) -> int:
        return len(self._values)


class Latest(Generic[V]):
    """One value per key, for the newest ``version`` seen (a database's write generation):
    ``get(key, version, make)`` answers from the kept value only for the same version. At
    most ``size`` keys, the oldest dropped first.

    Read ``version`` before the data ``make`` reads, and have writers bump it after they
    commit: then a kept value holds every write whose bump it has seen."""

    def __init__(self, size: int = 32) -> None:
        self.size = size
        self._values: dict[Hashable, tuple[int, V]] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, version: int, make: Callable[[], V]) -> V:
        kept = self._values.get(key)
        if kept is not None and kept[0] == version:
            return kept[1]
        value = make()
        with self._lock:
            kept = self._values.get(key)
            if kept is None or kept[0] <= version:
                self._values.pop(key, None)
                while len(self._values) >= self.size:
                    del self._values[next(iter(self._values))]
                self._values[key] = (version, value)
        return value
