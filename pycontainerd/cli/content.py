"""``pyctr content``: ls, get, fetch, rm, active, label, prune references."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from .app import CONTEXT_SETTINGS, each, format_option, pass_client, quiet_option
from .images import _resolver
from .output import age, echo_listing, human_size, labels_text, parse_labels
from .progress import make_progress

if TYPE_CHECKING:
    from ..client import AsyncClient


@click.group("content", context_settings=CONTEXT_SETTINGS)
def content() -> None:
    """Manage blobs in the content store.

    \b
    Examples:
      pyctr content ls
      pyctr content get sha256:… | head -c 200
      pyctr content fetch --plain-http 127.0.0.1:5000/library/busybox:latest
    """


@content.command("ls")
@quiet_option
@format_option
@click.argument("filters", nargs=-1)
@pass_client
async def ls(client: AsyncClient, quiet: bool, fmt: str, filters: tuple[str, ...]) -> None:
    """List blobs (FILTERS: digest==…, labels."k"==v)."""
    infos = sorted(await client.content.list(list(filters)), key=lambda i: i.digest)
    rows = [[i.digest, human_size(i.size), age(i.created_at), labels_text(i.labels)] for i in infos]
    echo_listing(fmt, quiet, ["DIGEST", "SIZE", "AGE", "LABELS"], rows, infos, [i.digest for i in infos])


@content.command("get")
@click.argument("digest")
@pass_client
async def get(client: AsyncClient, digest: str) -> None:
    """Write a blob's bytes to stdout."""
    out = sys.stdout.buffer
    async for chunk in client.content.read(digest):
        out.write(chunk)
    out.flush()


@content.command("fetch")
@click.option("--plain-http", is_flag=True, help="Talk to the registry over plain HTTP.")
@click.option("--platform", "platform_", metavar="OS/ARCH[/VARIANT]")
@click.option("--all-platforms", is_flag=True)
@click.option("-u", "--user", metavar="USER[:PASSWORD]", help="Registry credentials.")
@click.argument("ref")
@pass_client
async def fetch(client: AsyncClient, plain_http: bool, platform_: str | None, all_platforms: bool,
                user: str | None, ref: str) -> None:
    """Fetch an image's content (and record the image) without unpacking."""
    progress = make_progress(sys.stdout)
    resolver = _resolver(plain_http, user)
    try:
        image = await client.fetch(ref, platform=platform_, all_platforms=all_platforms, resolver=resolver,
                                   progress=progress)
    finally:
        await resolver.aclose()
    progress.close()
    click.echo(f"{image.name} {image.target.digest}")


@content.command("rm")
@click.argument("digests", nargs=-1, required=True)
@pass_client
async def rm(client: AsyncClient, digests: tuple[str, ...]) -> None:
    """Remove blobs from this namespace."""
    async with each(digests) as attempt:
        for d in digests:
            async with attempt():
                await client.content.delete(d)
                click.echo(d)


@content.command("label")
@click.argument("digest")
@click.argument("labels", nargs=-1)
@pass_client
async def label(client: AsyncClient, digest: str, labels: tuple[str, ...]) -> None:
    """Set (k=v) or clear (k=) labels of a blob; prints the labels it then has."""
    info = await client.content.update_labels(digest, parse_labels(labels)) if labels else \
        await client.content.info(digest)
    click.echo(labels_text(info.labels))


@content.command("active")
@format_option
@click.argument("filters", nargs=-1)
@pass_client
async def active(client: AsyncClient, fmt: str, filters: tuple[str, ...]) -> None:
    """List unfinished writes."""
    sts = await client.content.statuses(*filters)
    rows = [[s.ref, f"{human_size(s.offset)}/{human_size(s.total) if s.total else '?'}", age(s.started_at)]
            for s in sts]
    echo_listing(fmt, False, ["REF", "SIZE", "AGE"], rows, sts, [s.ref for s in sts])


@content.group("prune")
def prune() -> None:
    """Prune content."""


LAYER_REF_PREFIX = "containerd.io/gc.ref.content.l."


@prune.command("references")
@click.option("--dry", is_flag=True, help="Only show what would change.")
@pass_client
async def references(client: AsyncClient, dry: bool) -> None:
    """Drop manifests' references to their layers (containerd.io/gc.ref.content.l.*), so
    layer blobs of unpacked images can be garbage collected (their snapshots stay)."""
    for info in await client.content.list():
        keys = [k for k in info.labels if k.startswith(LAYER_REF_PREFIX)]
        if not keys:
            continue
        click.echo(f"{info.digest}: {'would remove' if dry else 'removing'} {len(keys)} layer reference(s)")
        if not dry:
            await client.content.update_labels(info.digest, {k: "" for k in keys},
                                               paths=[f"labels.{k}" for k in keys])
