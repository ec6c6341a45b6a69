"""The plugin registry (DESIGN §3), after containerd's ``plugin`` package.

A plugin is a :class:`Registration` — ``(type, id, requires, config, init)`` — and is known
by its URI ``<type>.<id>`` (``io.containerd.grpc.v1.namespaces``). The daemon collects the
registrations (built-ins from the ``pycontainerd_plugins`` package, third-party ones from
the entry-point group ``pycontainerd.plugins``), orders them by ``requires`` with a
depth-first walk that refuses cycles (:meth:`Registry.graph`), and initialises each in turn
(:func:`initialize`). A failed init is recorded on that plugin, never fatal unless the
plugin is listed in ``required_plugins``; a plugin whose dependency failed fails too, with
the dependency named. Raising :class:`~pycontainerd.errdefs.PluginSkipped` marks a plugin
``skip`` (a backend that does not fit this host).
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errdefs import FailedPrecondition, InvalidArgument, NotFound, PluginSkipped, quote
from .log import get_logger

log = get_logger("plugin")

ENTRY_POINT_GROUP = "pycontainerd.plugins"


class PluginType(enum.StrEnum):
    """Plugin type URIs, named as containerd names them."""

    CONTENT = "io.containerd.content.v1"
    METADATA = "io.containerd.metadata.v1"
    SNAPSHOTTER = "io.containerd.snapshotter.v1"
    DIFF = "io.containerd.differ.v1"
    RUNTIME_V2 = "io.containerd.runtime.v2"
    EVENT = "io.containerd.event.v1"
    SERVICE = "io.containerd.service.v1"
    GRPC = "io.containerd.grpc.v1"
    GC = "io.containerd.gc.v1"
    LEASE = "io.containerd.lease.v1"
    INTERNAL = "io.containerd.internal.v1"


ALL = "*"
"""A ``requires`` entry meaning "every other plugin" (used by introspection)."""


@dataclass(frozen=True)
class Registration:
    """What a plugin declares about itself.

    Attributes:
        type: plugin type URI (a :class:`PluginType` value or a third-party type).
        id: the plugin's id within its type.
        init: called as ``init(ic)`` with an :class:`InitContext`; may be a coroutine
            function; returns the plugin's instance (a store, a servicer, …).
        requires: plugin *types* this plugin needs initialised first; ``"*"`` means all.
        config: a dataclass type for the plugin's ``[plugins."<uri>"]`` table, or None.
        close: optional ``close(instance)`` called (awaited if a coroutine) at shutdown,
            in reverse init order.
    """

    type: str
    id: str
    init: Callable[[InitContext], Any]
    requires: tuple[str, ...] = ()
    config: type | None = None
    close: Callable[[Any], Any] | None = None

    @property
    def uri(self) -> str:
        return f"{self.type}.{self.id}"


@dataclass
class Plugin:
    """One plugin after init: its instance or its error, and what it reported about itself."""

    registration: Registration
    instance: Any = None
    error: BaseException | None = None
    exports: dict[str, str] = field(default_factory=dict)
    capabilities: list[str] = field(default_factory=list)
    platforms: list[dict[str, str]] = field(default_factory=list)
    init_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def skipped(self) -> bool:
        return isinstance(self.error, PluginSkipped)


class Registry:
    """An ordered set of registrations, unique by URI."""

    def __init__(self) -> None:
        self._registrations: dict[str, Registration] = {}

    def register(self, registration: Registration) -> Registration:
        """Add one registration. Raises :class:`AlreadyExists`-like ``InvalidArgument``
        when the URI is taken, and for an empty type or id."""
        if not registration.type or not registration.id:
            raise InvalidArgument("plugin: no type or id")
        if registration.uri in self._registrations:
            raise InvalidArgument(f"plugin {quote(registration.uri)} registered twice")
        self._registrations[registration.uri] = registration
        return registration

    def __iter__(self):
        return iter(self._registrations.values())

    def __len__(self) -> int:
        return len(self._registrations)

    def unknown(self, names: Iterable[str]) -> list[tuple[str, str | None]]:
        """The entries of ``names`` (URIs or bare ids, as ``disabled_plugins`` and
        ``required_plugins`` take them) that name no registered plugin, each with the closest
        registered URI or id (a likely misspelling), or None."""
        regs = list(self)
        known = {r.uri for r in regs} | {r.id for r in regs}
        out = []
        for name in names:
            if name in known:
                continue
            import difflib  # only for a name that is wrong: "did you mean"
            # compare ids (within the type when the name carries a registered one): the shared
            # "io.containerd." prefixes would make any two URIs look alike
            same_type = [r for r in regs if name.startswith(f"{r.type}.")]
            if same_type:
                type_ = same_type[0].type
                ids = {r.id: r.uri for r in same_type}
                close = difflib.get_close_matches(name[len(type_) + 1:], list(ids), n=1, cutoff=0.8)
                out.append((name, ids[close[0]] if close else None))
            else:
                close = difflib.get_close_matches(name, sorted(r.id for r in regs), n=1, cutoff=0.8)
                out.append((name, close[0] if close else None))
        return out

    def graph(self, disabled: Iterable[str] = ()) -> list[Registration]:
        """Registrations in init order: each after every plugin of the types it requires.

        ``disabled`` holds URIs (or bare ids, as containerd's ``disabled_plugins`` accepts)
        to leave out. Raises :class:`FailedPrecondition` on a dependency cycle.
        """
        off = set(disabled)
        regs = [r for r in self._registrations.values() if r.uri not in off and r.id not in off]
        ordered: list[Registration] = []
        done: set[str] = set()
        visiting: list[str] = []

        def visit(reg: Registration) -> None:
            if reg.uri in done:
                return
            if reg.uri in visiting:
                cycle = " -> ".join(visiting[visiting.index(reg.uri) :] + [reg.uri])
                raise FailedPrecondition(f"plugin dependency cycle: {cycle}")
            visiting.append(reg.uri)
            if ALL not in reg.requires:
                for other in regs:
                    if other.type in reg.requires and other is not reg:
                        visit(other)
            visiting.pop()
            done.add(reg.uri)
            ordered.append(reg)

        for reg in regs:
            if ALL not in reg.requires:
                visit(reg)
        # "requires all" plugins go last, in registration order.
        for reg in regs:
            if ALL in reg.requires:
                done.add(reg.uri)
                ordered.append(reg)
        return ordered


def load_entry_points(registry: Registry) -> list[tuple[str, BaseException]]:
    """Register third-party plugins from the entry-point group ``pycontainerd.plugins``.

    Each entry point must load to a :class:`Registration`, an iterable of them, or a
    callable taking the registry. Returns ``(entry point name, error)`` for those that
    failed to load; they are logged and skipped.
    """
    failures: list[tuple[str, BaseException]] = []
    if not _may_declare(ENTRY_POINT_GROUP):
        return failures
    from importlib import metadata

    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
            if isinstance(obj, Registration):
                registry.register(obj)
            elif callable(obj):
                obj(registry)
            else:
                for reg in obj:
                    registry.register(reg)
        except Exception as exc:  # a broken third-party package must not stop the daemon
            log.error("plugin entry point failed to load", entry_point=ep.name, error=str(exc))
            failures.append((ep.name, exc))
    return failures


def _may_declare(group: str) -> bool:
    """Whether a distribution on ``sys.path`` may declare entry points of ``group``: a look
    at the ``entry_points.txt`` of each ``*.dist-info``, ``*.egg-info`` and ``*.egg``
    directory for the ``[group]`` header, so that a daemon with no third-party plugin never
    imports :mod:`importlib.metadata` (with ``email``, ``zipfile``, ``csv`` …: 1.7 MiB of
    its idle memory). True — let :mod:`importlib.metadata` decide — whenever distributions
    may live elsewhere: a zip file on ``sys.path``, a finder of its own on ``sys.meta_path``."""
    from importlib.machinery import PathFinder

    if any(hasattr(f, "find_distributions") and f is not PathFinder for f in sys.meta_path):
        return True
    header = f"[{group}]"
    for entry in sys.path:
        entry = entry or "."
        if os.path.isfile(entry):
            return True
        try:
            names = os.listdir(entry)
        except OSError:
            continue
        for name in names:
            if name.endswith((".dist-info", ".egg-info")):
                path = os.path.join(entry, name, "entry_points.txt")
            elif name.endswith(".egg"):
                path = os.path.join(entry, name, "EGG-INFO", "entry_points.txt")
            else:
                continue
            try:
                with open(path, encoding="utf-8", errors="replace") as f:
                    if any(line.strip() == header for line in f):
                        return True
            except OSError:
                continue
    return False


@dataclass
class InitContext:
    """What a plugin's init gets: its config and directories, and the plugins before it.

    Attributes:
        root: ``<daemon root>/<plugin uri>``, the plugin's persistent directory (not created).
        state: ``<daemon state>/<plugin uri>``, its runtime directory (not created).
        config: the plugin's config dataclass instance (or None).
        daemon: the daemon-wide config (:class:`pycontainerd.config.Config`).
        plugin: the :class:`Plugin` being initialised; init may fill ``exports``,
            ``capabilities`` and ``platforms``.
    """

    root: Path
    state: Path
    config: Any
    daemon: Any
    plugin: Plugin
    _plugins: PluginSet

    def get(self, type_: str, id_: str) -> Any:
        """The instance of plugin ``type_.id_``.

        Raises:
            NotFound: no such plugin was initialised before this one.
            FailedPrecondition: it exists but its init failed (the cause is chained).
        """
        return self._plugins.instance(type_, id_)

    def get_single(self, type_: str) -> Any:
        """The instance of the only (or first working) plugin of ``type_``."""
        return self._plugins.single(type_)

    def get_all(self, type_: str) -> dict[str, Any]:
        """``{id: instance}`` of every working plugin of ``type_``."""
        return self._plugins.all(type_)

    @property
    def plugins(self) -> PluginSet:
        return self._plugins


class PluginSet:
    """The initialised plugins, in init order."""

    def __init__(self) -> None:
        self.by_uri: dict[str, Plugin] = {}

    def __iter__(self):
        return iter(self.by_uri.values())

    def instance(self, type_: str, id_: str) -> Any:
        plugin = self.by_uri.get(f"{type_}.{id_}")
        if plugin is None:
            raise NotFound(f"plugin {type_}.{id_}")
        if plugin.error is not None:
            raise FailedPrecondition(f"plugin {plugin.registration.uri} failed: {plugin.error}") from plugin.error
        return plugin.instance

    def single(self, type_: str) -> Any:
        candidates = [p for p in self.by_uri.values() if p.registration.type == type_]
        if not candidates:
            raise NotFound(f"no plugins registered for {type_}")
        for p in candidates:
            if p.ok:
                return p.instance
        first = candidates[0]
        raise FailedPrecondition(f"plugin {first.registration.uri} failed: {first.error}") from first.error

    def all(self, type_: str) -> dict[str, Any]:
        return {
            p.registration.id: p.instance
            for p in self.by_uri.values()
            if p.registration.type == type_ and p.ok
        }


def build_config(registration: Registration, table: Mapping[str, Any] | None) -> Any:
    """The plugin's config dataclass from its TOML table (defaults for absent keys).

    Raises :class:`InvalidArgument` naming any key the plugin does not know.
    """
    if registration.config is None:
        if table:
            raise InvalidArgument(f"plugin {registration.uri} takes no configuration")
        return None
    known = {f.name for f in dataclasses.fields(registration.config)}
    unknown = sorted(set(table or {}) - known)
    if unknown:
        raise InvalidArgument(
            f"unknown option(s) {', '.join(unknown)} in [plugins.{quote(registration.uri)}]"
            f"; known: {', '.join(sorted(known))}"
        )
    return registration.config(**dict(table or {}))


async def initialize(
    order: list[Registration],
    daemon_config: Any,
    plugin_tables: Mapping[str, Mapping[str, Any]],
    root: Path,
    state: Path,
) -> PluginSet:
    """Initialise ``order`` (from :meth:`Registry.graph`) one by one.

    Every failure is recorded on its :class:`Plugin`; nothing raises here. The caller checks
    ``required_plugins`` against the result.
    """
    plugins = PluginSet()
    for reg in order:
        plugin = Plugin(reg)
        plugins.by_uri[reg.uri] = plugin
        started = time.monotonic()
        try:
            config = build_config(reg, plugin_tables.get(reg.uri))
            ic = InitContext(
                root=root / reg.uri,
                state=state / reg.uri,
                config=config,
                daemon=daemon_config,
                plugin=plugin,
                _plugins=plugins,
            )
            result = reg.init(ic)
            if inspect.isawaitable(result):
                result = await result
            plugin.instance = result
        except PluginSkipped as exc:
            plugin.error = exc
            log.info("plugin skipped", type=str(reg.type), id=reg.id, reason=str(exc))
        except Exception as exc:
            plugin.error = exc
            log.warning("plugin init failed", type=str(reg.type), id=reg.id, error=str(exc))
        else:
            log.debug("plugin loaded", type=str(reg.type), id=reg.id)
        plugin.init_seconds = time.monotonic() - started
    return plugins


async def close_all(plugins: PluginSet) -> None:
    """Close working plugins in reverse init order; errors are logged, never raised."""
    for plugin in reversed(list(plugins)):
        close: Callable[[Any], Awaitable[Any] | Any] | None = plugin.registration.close
        if close is None or not plugin.ok:
            continue
        try:
            result = close(plugin.instance)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            log.error("plugin close failed", type=plugin.registration.type, id=plugin.registration.id, error=str(exc))
