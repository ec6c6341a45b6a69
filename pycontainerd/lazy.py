"""Packages whose public names are imported on first use (PEP 562).

A package that re-exports names from heavy modules (``pycontainerd.client``,
``pycontainerd.oci``) would make every importer of one small submodule pay for all of
them: ``pyctr version`` loading spec generation, HTTP and LMDB. Instead::

    __getattr__, __dir__ = lazy_exports(__name__, {".opts": ("generate", …), …})
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def lazy_exports(package: str, table: Mapping[str, Iterable[str]], submodules: Iterable[str] = (),
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module ``__getattr__`` and ``__dir__`` of ``package``: ``table`` maps a module
    (relative to ``package``) to the names it gives; ``submodules`` are subpackages reached
    as attributes (``package.cio``). A name is imported once, then kept in the package."""
    exports = {name: module for module, names in table.items() for name in names}
    subs = frozenset(submodules)

    def __getattr__(name: str) -> Any:
        if name in subs:
            return importlib.import_module(f"{package}.{name}")
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *exports, *subs})

    return __getattr__, __dir__
