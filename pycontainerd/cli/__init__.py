"""``pyctr``: the command line of pycontainerd, shaped like containerd's ``ctr``.

One module per command group (:mod:`.images`, :mod:`.content`, :mod:`.containers`,
:mod:`.tasks`, :mod:`.run`, :mod:`.snapshots`, :mod:`.events`, :mod:`.namespaces`,
:mod:`.leases`, :mod:`.plugins`, :mod:`.version`); :mod:`.app` holds the root command, the
global options and error reporting; :mod:`.output` and :mod:`.progress` the formatting.
Everything talks to the daemon through :mod:`pycontainerd.client`.
"""

from __future__ import annotations

import click

from . import (
    admin,
    completion,
    containers,
    content,
    events,
    images,
    leases,
    namespaces,
    plugins,
    run,
    snapshots,
    tasks,
    version,
)
from .app import cli

ALIASES = {"i": "images", "image": "images", "c": "containers", "container": "containers", "t": "tasks",
           "task": "tasks", "ns": "namespaces", "namespace": "namespaces", "snapshot": "snapshots",
           "plugin": "plugins", "lease": "leases"}

for command in (images.images, content.content, containers.containers, tasks.tasks, run.run, snapshots.snapshots,
                events.events, namespaces.namespaces, leases.leases, plugins.plugins, version.version, version.info,
                completion.completion, admin.admin):
    cli.add_command(command)


class _Aliases:
    """Resolve ctr's short names (``c``, ``t``, ``ns`` …) without listing them twice in
    ``--help``."""

    @staticmethod
    def install(group: click.Group) -> None:
        original = group.get_command

        def get_command(ctx: click.Context, name: str):
            return original(ctx, ALIASES.get(name, name))

        group.get_command = get_command  # type: ignore[method-assign]

        original_resolve = group.resolve_command

        def resolve_command(ctx: click.Context, args: list[str]):
            if args and args[0] in ALIASES:
                args = [ALIASES[args[0]], *args[1:]]
            return original_resolve(ctx, args)

        group.resolve_command = resolve_command  # type: ignore[method-assign]


_Aliases.install(cli)


def main(argv: list[str] | None = None) -> None:
    """The ``pyctr`` console script."""
    cli.main(args=argv, prog_name="pyctr")


__all__ = ["cli", "main"]
