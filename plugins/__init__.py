"""Plugin registrations (installed as ``pycontainerd_plugins``).

Each module here registers exactly one plugin by defining ``registration``, a
:class:`pycontainerd.plugin.Registration`. Adding a snapshotter or a service is adding one
file. :func:`registry` collects them all, then the third-party plugins of the entry-point
group ``pycontainerd.plugins``.
"""

from __future__ import annotations

import importlib
import pkgutil

from pycontainerd.plugin import Registration, Registry, load_entry_points


def builtin() -> list[Registration]:
    """Every built-in registration, in module-name order."""
    out = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        out.append(module.registration)
    return out


def registry(entry_points: bool = True) -> Registry:
    """A registry with the built-ins and (unless disabled) third-party plugins."""
    reg = Registry()
    for r in builtin():
        reg.register(r)
    if entry_points:
        load_entry_points(reg)
    return reg
