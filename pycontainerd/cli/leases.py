"""``pyctr leases``: ls, create, rm."""

from __future__ import annotations

from typing import TYPE_CHECKING

from datetime import timedelta

import click

from .app import CONTEXT_SETTINGS, each, format_option, pass_client, quiet_option
from .output import echo_listing, labels_text, parse_labels, rfc3339

if TYPE_CHECKING:
    from ..client import AsyncClient


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``24h``, ``1h30m``, ``0`` (never) → timedelta. Raises ``click.BadParameter``."""
    import re

    if text in ("0", ""):
        return timedelta(0)
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise click.BadParameter(f"invalid duration {text!r} (examples: 90s, 15m, 24h, 1h30m)")
    unit = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    return timedelta(seconds=sum(float(n) * unit[u] for n, u in parts))


@click.group("leases", context_settings=CONTEXT_SETTINGS)
def leases() -> None:
    """Manage leases (holds on content and snapshots against garbage collection)."""


@leases.command("ls")
@quiet_option
@format_option
@click.argument("filters", nargs=-1)
@pass_client
async def ls(client: AsyncClient, quiet: bool, fmt: str, filters: tuple[str, ...]) -> None:
    """List leases."""
    ls_ = sorted(await client.list_leases(*filters), key=lambda x: x.id)
    rows = [[x.id, rfc3339(x.created_at), labels_text(x.labels)] for x in ls_]
    echo_listing(fmt, quiet, ["ID", "CREATED AT", "LABELS"], rows, ls_, [x.id for x in ls_])


@leases.command("create")
@click.option("--id", "lease_id", default="", help="Lease id (default: a random one).")
@click.option("--expires", "-x", default="24h", show_default=True, help="Expire after this long (0: never).")
@click.argument("labels", nargs=-1)
@pass_client
async def create(client: AsyncClient, lease_id: str, expires: str, labels: tuple[str, ...]) -> None:
    """Create a lease; prints its id."""
    d = parse_duration(expires)
    lease = await client.create_lease(lease_id, parse_labels(labels), expire=d if d else None)
    click.echo(lease.id)


@leases.command("rm")
@click.option("--sync", is_flag=True, help="Wait for the garbage collection it triggers.")
@click.argument("ids", nargs=-1, required=True)
@pass_client
async def rm(client: AsyncClient, sync: bool, ids: tuple[str, ...]) -> None:
    """Remove leases."""
    async with each(ids) as attempt:
        for i in ids:
            async with attempt():
                await client.delete_lease(i, sync=sync)
                click.echo(i)
