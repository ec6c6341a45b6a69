"""``pyctr``: the command line of pycontainerd, shaped like containerd's ``ctr``.

One module per command group (:mod:`.images`, :mod:`.content`, :mod:`.containers`,
:mod:`.tasks`, :mod:`.run`, :mod:`.snapshots`, :mod:`.events`, :mod:`.namespaces`,
:mod:`.leases`, :mod:`.plugins`, :mod:`.version`); :mod:`.app` holds the root command, the
global options and error reporting; :mod:`.output` and :mod:`.progress` the formatting.
Everything talks to the daemon through :mod:`pycontainerd.client`.

A command's module is imported only when that command runs (:class:`.app.LazyGroup`,
table :data:`COMMANDS`): ``pyctr version`` loads neither the image code nor LMDB.
"""

from __future__ import annotations

from .app import cli

COMMANDS = {
    "images": ("images", "images"), "content": ("content", "content"),
    "containers": ("containers", "containers"), "tasks": ("tasks", "tasks"), "run": ("run", "run"),
    "snapshots": ("snapshots", "snapshots"), "events": ("events", "events"),
    "namespaces": ("namespaces", "namespaces"), "leases": ("leases", "leases"), "plugins": ("plugins", "plugins"),
    "version": ("version", "version"), "info": ("version", "info"), "completion": ("completion", "completion"),
    "admin": ("admin", "admin"),
}
"""Command name → (module of this package, attribute): the root command's subcommands."""

ALIASES = {"i": "images", "image": "images", "c": "containers", "container": "containers", "t": "tasks",
           "task": "tasks", "ns": "namespaces", "namespace": "namespaces", "snapshot": "snapshots",
           "plugin": "plugins", "lease": "leases"}
"""ctr's short names, resolved without listing them twice in ``--help``."""

cli.lazy(__name__, COMMANDS, ALIASES)


def main(argv: list[str] | None = None) -> None:
    """The ``pyctr`` console script."""
    cli.main(args=argv, prog_name="pyctr")


__all__ = ["cli", "main"]
