"""``pyctr plugins`` (alias ``plugin``): ls."""

from __future__ import annotations

import click
from typing import TYPE_CHECKING

from .app import CONTEXT_SETTINGS, format_option, pass_client, quiet_option
from .output import dumps, echo_listing

if TYPE_CHECKING:
    from ..client import AsyncClient


@click.group("plugins", context_settings=CONTEXT_SETTINGS)
def plugins() -> None:
    """Show the daemon's plugins. Alias: plugin."""


@plugins.command("ls")
@quiet_option
@format_option
@click.option("-d", "--detailed", is_flag=True, help="Requirements, exports, capabilities and errors.")
@click.argument("filters", nargs=-1)
@pass_client
async def ls(client: AsyncClient, quiet: bool, fmt: str, detailed: bool, filters: tuple[str, ...]) -> None:
    """List plugins (FILTERS: type==io.containerd.snapshotter.v1, id==overlayfs)."""
    ps = await client.plugins(*filters)
    if detailed and fmt == "table" and not quiet:
        for p in ps:
            click.echo(f"Type:          {p.type}\nID:            {p.id}")
            if p.requires:
                click.echo("Requires:      " + "\n               ".join(p.requires))
            if p.platforms:
                click.echo("Platforms:     " + ", ".join(p.platforms))
            for k, v in sorted(p.exports.items()):
                click.echo(f"Export:        {k}={v}")
            if p.capabilities:
                click.echo("Capabilities:  " + ", ".join(p.capabilities))
            if p.error:
                click.echo(f"Error:         {p.error}")
            click.echo()
        return
    rows = [[p.type, p.id, ",".join(p.platforms) or "-", p.status] for p in ps]
    items = [{**{k: v for k, v in vars(p).items()}, "status": p.status} for p in ps] if fmt == "json" else ps
    if fmt == "json" and not quiet:
        click.echo(dumps(items))
        return
    echo_listing(fmt, quiet, ["TYPE", "ID", "PLATFORMS", "STATUS"], rows, ps, [f"{p.type}.{p.id}" for p in ps])
