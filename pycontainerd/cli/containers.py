"""``pyctr containers`` (alias ``c``): create, ls, info, rm, label."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from ..errdefs import NotFound
from ..oci import spec as oci_spec
from .app import CONTEXT_SETTINGS, each, format_option, pass_client, quiet_option
from .output import echo_listing, labels_text, parse_labels, to_jsonable
from .run import create_container, spec_flags

if TYPE_CHECKING:
    from ..client import AsyncClient


@click.group("containers", context_settings=CONTEXT_SETTINGS)
def containers() -> None:
    """Manage containers (metadata; tasks run them). Alias: c.

    \b
    Examples:
      pyctr containers create IMAGE web sleep 1000 && pyctr tasks start -d web
      pyctr c ls -q
      pyctr c info --spec web
    """


@containers.command("create", context_settings={"allow_interspersed_args": False})
@spec_flags
@click.argument("image")
@click.argument("container_id", metavar="ID")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@pass_client
async def create(client: AsyncClient, image: str, container_id: str, args: tuple[str, ...], **kw: Any) -> None:
    """Create a container from IMAGE (run it with `pyctr tasks start ID`)."""
    await create_container(client, image, container_id, args, kw)


@containers.command("ls")
@quiet_option
@format_option
@click.argument("filters", nargs=-1)
@pass_client
async def ls(client: AsyncClient, quiet: bool, fmt: str, filters: tuple[str, ...]) -> None:
    """List containers (FILTERS: image==…, labels."k"==v, runtime.name==…)."""
    cs = sorted(await client.list_containers(*filters), key=lambda c: c.id)
    rows = [[c.id, c.image or "-", c.runtime.name] for c in cs]
    items = [info_dict(c, spec=False) for c in cs]
    echo_listing(fmt, quiet, ["CONTAINER", "IMAGE", "RUNTIME"], rows, items, [c.id for c in cs])


def info_dict(c, spec: bool = True) -> dict[str, Any]:
    """A container record as pyctr prints it (docs/pyctr.md: snake_case keys, RFC 3339
    times); ``spec`` adds the OCI runtime spec, a document printed as it is."""
    out: dict[str, Any] = {
        "id": c.id, "image": c.image, "runtime": {"name": c.runtime.name, "options": c.runtime.options},
        "snapshotter": c.snapshotter, "snapshot_key": c.snapshot_key, "labels": dict(c.labels),
        "extensions": {k: {"type_url": v.type_url} for k, v in c.extensions.items()},
        "created_at": c.created_at, "updated_at": c.updated_at,
    }
    if spec:
        out["spec"] = oci_spec.from_any(c.spec) if c.spec is not None else None
    return to_jsonable(out)


@containers.command("info")
@click.option("--spec", "spec_only", is_flag=True, help="Print only the OCI spec.")
@click.argument("container_id", metavar="ID")
@pass_client
async def info(client: AsyncClient, spec_only: bool, container_id: str) -> None:
    """Print a container's record (and spec) as JSON."""
    c = await client.get_container(container_id)
    doc = info_dict(c)
    click.echo(json.dumps(doc["spec"] if spec_only else doc, indent=4))


@containers.command("rm")
@click.option("--keep-snapshot", is_flag=True, help="Keep the container's rootfs snapshot.")
@click.argument("ids", nargs=-1, required=True)
@pass_client
async def rm(client: AsyncClient, keep_snapshot: bool, ids: tuple[str, ...]) -> None:
    """Remove containers (and their rootfs snapshots). Their tasks must be deleted first."""
    async with each(ids) as attempt:
        for cid in ids:
            async with attempt():
                container = await client.load_container(cid)
                await container.delete(with_snapshot=not keep_snapshot)


@containers.command("label")
@click.argument("container_id", metavar="ID")
@click.argument("labels", nargs=-1)
@pass_client
async def label(client: AsyncClient, container_id: str, labels: tuple[str, ...]) -> None:
    """Set (k=v) or clear (k=) labels of a container; prints the labels it then has."""
    container = await client.load_container(container_id)
    if labels:
        current = await container.set_labels(parse_labels(labels))
    else:
        current = await container.labels()
    click.echo(labels_text(current))


__all__ = ["containers", "NotFound"]
