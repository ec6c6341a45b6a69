"""Packages whose public names are imported on first use (PEP 562).

A package that re-exports names from heavy modules (``pycontainerd.client``,
``pycontainerd.oci``) would make every importer of one small submodule pay for all of
them: ``pyctr version`` loading spec generation, HTTP and LMDB. Instead::

    __getattr__, __dir__ = lazy_exports(__name__, {".opts": ("generate", …), …})

and a module that uses a heavy one in a few of its functions names it with
:class:`LazyModule`.
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


class LazyModule:
    """Stands for the module ``name`` until an attribute is read from it, which imports it
    (once; then each read is a dictionary lookup in ``sys.modules``): for modules used in a
    few functions of a module that many importers load for something else — the client's
    generated protobuf modules, which a command needs only for the services it calls::

        if TYPE_CHECKING:  # the real import: for type checkers, and the layering test's graph
            from ..api.services.images.v1 import images_pb2
        else:
            images_pb2 = LazyModule("pycontainerd.api.services.images.v1.images_pb2")
    """

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self._name), attr)

    def __repr__(self) -> str:
        return f"<LazyModule {self._name!r}>"
