"""``pyctr version`` and ``pyctr info``."""

from __future__ import annotations

import json
import platform
from typing import TYPE_CHECKING

import click

from .. import version as version_mod
from .app import CONTEXT_SETTINGS, format_option, pass_client

if TYPE_CHECKING:
    from ..client import AsyncClient


@click.command("version", context_settings=CONTEXT_SETTINGS)
@format_option
@pass_client
async def version(client: AsyncClient, fmt: str) -> None:
    """Print the client's and the daemon's versions."""
    server = await client.version()
    uuid = (await client.server()).uuid
    if fmt == "json":
        click.echo(json.dumps({"client": {"version": version_mod.VERSION, "revision": version_mod.REVISION,
                                          "python": platform.python_version()},
                               "server": {"version": server.version, "revision": server.revision, "uuid": uuid}},
                              indent=2))
        return
    click.echo("Client:")
    click.echo(f"  Version:  {version_mod.VERSION}")
    click.echo(f"  Revision: {version_mod.REVISION}")
    click.echo(f"  Python version: {platform.python_version()}")
    click.echo()
    click.echo("Server:")
    click.echo(f"  Version:  {server.version}")
    click.echo(f"  Revision: {server.revision}")
    click.echo(f"  UUID: {uuid}")


@click.command("info", context_settings=CONTEXT_SETTINGS)
@pass_client
async def info(client: AsyncClient) -> None:
    """Print what the daemon is, as JSON: version, UUID, address, namespaces, plugins."""
    server = await client.version()
    uuid = (await client.server()).uuid
    plugins = await client.plugins()
    doc = {
        "server": {"version": server.version, "revision": server.revision, "uuid": uuid},
        "address": client.address,
        "namespace": client.namespace,
        "namespaces": sorted(n.name for n in await client.list_namespaces()),
        "snapshotters": sorted(p.id for p in plugins if p.type == "io.containerd.snapshotter.v1" and p.status == "ok"),
        "plugins": {"ok": sum(p.status == "ok" for p in plugins), "skip": sum(p.status == "skip" for p in plugins),
                    "error": sorted(f"{p.type}.{p.id}" for p in plugins if p.status == "error")},
    }
    click.echo(json.dumps(doc, indent=2))
