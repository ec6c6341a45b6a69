"""``pyctr snapshots`` (alias ``snapshot``): ls, tree, usage, prepare, view, commit, rm,
mounts, info, label."""

from __future__ import annotations

import dataclasses
import shlex

import click

from ..client import AsyncClient, SnapshotInfo
from ..mount import Mount
from .app import CONTEXT_SETTINGS, each, format_option, pass_client, quiet_option
from .output import dumps, echo_listing, human_size, labels_text, parse_labels, table


@click.group("snapshots", context_settings=CONTEXT_SETTINGS)
@click.option("--snapshotter", default="overlayfs", show_default=True, envvar="CONTAINERD_SNAPSHOTTER",
              help="Snapshotter to use.")
@click.pass_context
def snapshots(ctx: click.Context, snapshotter: str) -> None:
    """Manage snapshots (root filesystems and image layers).

    \b
    Examples:
      pyctr snapshots ls
      pyctr snapshots prepare --mounts /mnt/work sha256:…   # prints the mount command
      pyctr snapshots --snapshotter native tree
    """
    ctx.meta["pyctr.snapshotter"] = snapshotter


def _snapshotter() -> str:
    return click.get_current_context().meta.get("pyctr.snapshotter", "overlayfs")


def mount_command(m: Mount, target: str) -> str:
    """The ``mount`` command line for ``m`` on ``target`` (``ctr snapshots mounts`` style)."""
    args = ["mount", "-t", m.type, m.source, target]
    if m.options:
        args += ["-o", ",".join(m.options)]
    return " ".join(shlex.quote(a) for a in args)


@snapshots.command("ls")
@quiet_option
@format_option
@click.argument("filters", nargs=-1)
@pass_client
async def ls(client: AsyncClient, quiet: bool, fmt: str, filters: tuple[str, ...]) -> None:
    """List snapshots."""
    infos = sorted(await client.snapshotter(_snapshotter()).list(*filters), key=lambda i: i.name)
    rows = [[i.name, i.parent, i.kind] for i in infos]
    echo_listing(fmt, quiet, ["KEY", "PARENT", "KIND"], rows, [_as_json(i) for i in infos], [i.name for i in infos])


def _as_json(info: SnapshotInfo) -> SnapshotInfo:
    """The record with its kind as docs/pyctr.md's JSON names enumerations (``active``)."""
    return dataclasses.replace(info, kind=info.kind.lower())


@snapshots.command("tree")
@pass_client
async def tree(client: AsyncClient) -> None:
    """Show snapshots as a tree of parents and children."""
    infos = await client.snapshotter(_snapshotter()).list()
    names = {i.name for i in infos}
    children: dict[str, list[str]] = {}
    for i in sorted(infos, key=lambda x: x.name):
        children.setdefault(i.parent if i.parent in names else "", []).append(i.name)

    def show(name: str, level: int) -> None:
        prefix = "  " * level + ("\\_" if level else "")
        click.echo(f"{prefix} {name}")
        for child in children.get(name, []):
            show(child, level + 1)

    for root in children.get("", []):
        show(root, 0)


@snapshots.command("usage")
@format_option
@click.argument("keys", nargs=-1)
@pass_client
async def usage(client: AsyncClient, fmt: str, keys: tuple[str, ...]) -> None:
    """Disk usage of snapshots (all when no KEY)."""
    snaps = client.snapshotter(_snapshotter())
    names = list(keys) or sorted(i.name for i in await snaps.list())
    rows, items = [], []
    for k in names:
        u = await snaps.usage(k)
        rows.append([k, human_size(u.size), u.inodes])
        items.append({"key": k, "size": u.size, "inodes": u.inodes})
    echo_listing(fmt, False, ["KEY", "SIZE", "INODES"], rows, items, names)


def _print_mounts(mounts: list[Mount], target: str | None, show: bool) -> None:
    if show:
        for m in mounts:
            click.echo(mount_command(m, target or "<target>"))


@snapshots.command("prepare")
@click.option("--target", metavar="DIR", help="Where you will mount it (for --mounts).")
@click.option("--mounts", "show", is_flag=True, help="Print the mount command.")
@click.option("--label", multiple=True, metavar="KEY=VALUE")
@click.argument("key")
@click.argument("parent", required=False, default="")
@pass_client
async def prepare(client: AsyncClient, target: str | None, show: bool, label: tuple[str, ...], key: str,
                  parent: str) -> None:
    """Make an active (writable) snapshot KEY on top of PARENT."""
    mounts = await client.snapshotter(_snapshotter()).prepare(key, parent, parse_labels(label))
    _print_mounts(mounts, target, show)


@snapshots.command("view")
@click.option("--target", metavar="DIR", help="Where you will mount it (for --mounts).")
@click.option("--mounts", "show", is_flag=True, help="Print the mount command.")
@click.option("--label", multiple=True, metavar="KEY=VALUE")
@click.argument("key")
@click.argument("parent", required=False, default="")
@pass_client
async def view(client: AsyncClient, target: str | None, show: bool, label: tuple[str, ...], key: str,
               parent: str) -> None:
    """Make a read-only view KEY of PARENT."""
    mounts = await client.snapshotter(_snapshotter()).view(key, parent, parse_labels(label))
    _print_mounts(mounts, target, show)


@snapshots.command("commit")
@click.option("--label", multiple=True, metavar="KEY=VALUE")
@click.argument("name")
@click.argument("key")
@pass_client
async def commit(client: AsyncClient, label: tuple[str, ...], name: str, key: str) -> None:
    """Commit the active snapshot KEY as NAME."""
    await client.snapshotter(_snapshotter()).commit(name, key, parse_labels(label))


@snapshots.command("rm")
@click.argument("keys", nargs=-1, required=True)
@pass_client
async def rm(client: AsyncClient, keys: tuple[str, ...]) -> None:
    """Remove snapshots (children first)."""
    snaps = client.snapshotter(_snapshotter())
    async with each(keys) as attempt:
        for k in keys:
            async with attempt():
                await snaps.remove(k)


@snapshots.command("mounts")
@click.argument("target")
@click.argument("key")
@pass_client
async def mounts(client: AsyncClient, target: str, key: str) -> None:
    """Print the mount command that mounts KEY on TARGET."""
    for m in await client.snapshotter(_snapshotter()).mounts(key):
        click.echo(mount_command(m, target))


@snapshots.command("info")
@click.argument("key")
@pass_client
async def info(client: AsyncClient, key: str) -> None:
    """Print a snapshot's info as JSON."""
    i = await client.snapshotter(_snapshotter()).stat(key)
    click.echo(dumps(_as_json(i), indent=4))


@snapshots.command("label")
@click.argument("key")
@click.argument("labels", nargs=-1)
@pass_client
async def label(client: AsyncClient, key: str, labels: tuple[str, ...]) -> None:
    """Set (k=v) or clear (k=) labels of a snapshot; prints the labels it then has."""
    snaps = client.snapshotter(_snapshotter())
    i = await snaps.update_labels(key, parse_labels(labels)) if labels else await snaps.stat(key)
    click.echo(labels_text(i.labels))


__all__ = ["snapshots", "table"]
