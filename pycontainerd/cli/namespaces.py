"""``pyctr namespaces`` (alias ``ns``): create, ls, rm, label."""

from __future__ import annotations

import click
from typing import TYPE_CHECKING

from .app import CONTEXT_SETTINGS, each, format_option, pass_client, quiet_option
from .output import echo_listing, labels_text, parse_labels

if TYPE_CHECKING:
    from ..client import AsyncClient


@click.group("namespaces", context_settings=CONTEXT_SETTINGS)
def namespaces() -> None:
    """Manage namespaces. Alias: ns.

    \b
    Examples:
      pyctr ns create team-a owner=alice
      pyctr -n team-a images ls
    """


@namespaces.command("create")
@click.argument("name")
@click.argument("labels", nargs=-1)
@pass_client
async def create(client: AsyncClient, name: str, labels: tuple[str, ...]) -> None:
    """Create a namespace with optional KEY=VALUE labels."""
    await client.create_namespace(name, parse_labels(labels))


@namespaces.command("ls")
@quiet_option
@format_option
@pass_client
async def ls(client: AsyncClient, quiet: bool, fmt: str) -> None:
    """List namespaces."""
    nss = sorted(await client.list_namespaces(), key=lambda n: n.name)
    rows = [[n.name, labels_text(n.labels) if n.labels else ""] for n in nss]
    echo_listing(fmt, quiet, ["NAME", "LABELS"], rows, nss, [n.name for n in nss])


@namespaces.command("rm")
@click.argument("names", nargs=-1, required=True)
@pass_client
async def rm(client: AsyncClient, names: tuple[str, ...]) -> None:
    """Remove empty namespaces."""
    async with each(names) as attempt:
        for n in names:
            async with attempt():
                await client.delete_namespace(n)
                click.echo(n)


@namespaces.command("label")
@click.argument("name")
@click.argument("labels", nargs=-1, required=True)
@pass_client
async def label(client: AsyncClient, name: str, labels: tuple[str, ...]) -> None:
    """Set (k=v) or clear (k=) labels of a namespace."""
    ns = await client.set_namespace_labels(name, parse_labels(labels))
    click.echo(labels_text(ns.labels))
