"""``pyctr images``: pull, push, ls, rm, prune, import, export, tag, check, mount,
unmount, inspect."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import sys
import time
from typing import TYPE_CHECKING

import click

from ..errdefs import AlreadyExists, InvalidArgument, NotFound
from ..remotes import platforms as plats
from .app import CONTEXT_SETTINGS, each, format_option, pass_client, quiet_option
from .output import dumps, echo_listing, human_size, labels_text
from .progress import make_progress

if TYPE_CHECKING:
    from ..client import AsyncClient


@click.group("images", context_settings=CONTEXT_SETTINGS)
def images() -> None:
    """Manage images (alias: i).

    \b
    Examples:
      pyctr images pull --plain-http 127.0.0.1:5000/library/busybox:latest
      pyctr images ls -q
      pyctr images export busybox.tar docker.io/library/busybox:latest
      pyctr images import busybox.tar
    """


def _plain_http(flag: bool) -> bool:
    return flag


@images.command("pull")
@click.option("--plain-http", is_flag=True, help="Talk to the registry over plain HTTP.")
@click.option("--platform", "platform_", metavar="OS/ARCH[/VARIANT]", help="Pull this platform (default: this host's).")
@click.option("--all-platforms", is_flag=True, help="Pull the content of every platform.")
@click.option("--snapshotter", default="overlayfs", show_default=True, help="Snapshotter to unpack into.")
@click.option("--skip-unpack", is_flag=True, help="Only fetch; do not unpack the layers.")
@click.option("-u", "--user", metavar="USER[:PASSWORD]", help="Registry credentials.")
@click.option("--no-progress", is_flag=True, help="No progress display.")
@click.argument("ref")
@pass_client
async def pull(client: AsyncClient, plain_http: bool, platform_: str | None, all_platforms: bool, snapshotter: str,
               skip_unpack: bool, user: str | None, no_progress: bool, ref: str) -> None:
    """Fetch an image from a registry and unpack it.

    \b
    Example:
      pyctr images pull --plain-http 127.0.0.1:5000/library/busybox:latest
    """
    progress = make_progress(sys.stdout, enabled=not no_progress)
    resolver = _resolver(plain_http, user)
    started = time.monotonic()
    try:
        image = await client.pull(ref, platform=platform_, all_platforms=all_platforms, unpack=False,
                                  snapshotter=snapshotter, resolver=resolver, progress=progress)
        progress.close()
        if not skip_unpack:
            plat = platform_ or plats.default_string()
            click.echo(f"unpacking {plat} {image.target.digest}...")
            await image.unpack(snapshotter, platform_)
        click.echo(f"done: {time.monotonic() - started:.2f}s")
        click.echo(f"{image.name}   {image.target.digest}   {human_size(await image.size(platform_))}")
    finally:
        await resolver.aclose()


def _resolver(plain_http: bool, user: str | None):
    from ..remotes.resolver import Resolver

    credentials = None
    if user:
        name, _, secret = user.partition(":")
        if not secret:
            secret = click.prompt("Password", hide_input=True, err=True)
        credentials = (name, secret)
    return Resolver(plain_http=plain_http, credentials=credentials)


@images.command("push")
@click.option("--plain-http", is_flag=True, help="Talk to the registry over plain HTTP.")
@click.option("--platform", "platform_", metavar="OS/ARCH[/VARIANT]",
              help="Push only this platform of an index (default: every platform).")
@click.option("-u", "--user", metavar="USER[:PASSWORD]", help="Registry credentials.")
@click.option("--no-progress", is_flag=True, help="No progress display.")
@click.argument("remote")
@click.argument("local", required=False)
@pass_client
async def push(client: AsyncClient, plain_http: bool, platform_: str | None, user: str | None, no_progress: bool,
               remote: str, local: str | None) -> None:
    """Push the local image LOCAL (default: REMOTE) to REMOTE.

    \b
    Example:
      pyctr images push --plain-http 127.0.0.1:5000/me/busybox:v1 docker.io/library/busybox:latest
    """
    image = await client.get_image(local or remote)
    progress = make_progress(sys.stdout, enabled=not no_progress)
    resolver = _resolver(plain_http, user)
    try:
        target = await client.push(remote, image, platform=platform_, all_platforms=platform_ is None,
                                   resolver=resolver, progress=progress)
    finally:
        await resolver.aclose()
    progress.close()
    click.echo(f"pushed {remote} {target.digest}")


@images.command("ls")
@quiet_option
@format_option
@click.argument("filters", nargs=-1)
@pass_client
async def ls(client: AsyncClient, quiet: bool, fmt: str, filters: tuple[str, ...]) -> None:
    """List images (FILTERS: name==…, labels."k"==v)."""
    imgs = sorted(await client.list_images(*filters), key=lambda i: i.name)
    rows, items = [], []
    for img in imgs:
        if quiet:
            continue
        try:
            size = await img.size()
            size_text = human_size(size)
        except (NotFound, InvalidArgument):
            size, size_text = None, "-"
        try:
            platforms = await img.platforms()
        except (NotFound, InvalidArgument):
            platforms = []
        rows.append([img.name, img.target.media_type, img.target.digest, size_text, ",".join(platforms) or "-",
                     labels_text(img.labels)])
        items.append({"name": img.name, "target": img.target, "size": size, "platforms": platforms,
                      "labels": dict(img.labels), "created_at": img.created_at, "updated_at": img.updated_at})
    echo_listing(fmt, quiet, ["REF", "TYPE", "DIGEST", "SIZE", "PLATFORMS", "LABELS"], rows, items,
                 [i.name for i in imgs])


@images.command("rm")
@click.option("--sync", is_flag=True, help="Wait until the image's content is garbage collected.")
@click.argument("refs", nargs=-1, required=True)
@pass_client
async def rm(client: AsyncClient, sync: bool, refs: tuple[str, ...]) -> None:
    """Remove images (their content goes with garbage collection)."""
    async with each(refs) as attempt:
        for ref in refs:
            async with attempt():
                await client.delete_image(ref, sync=sync)
                click.echo(ref)


@images.command("prune")
@click.option("--all", "all_", is_flag=True, help="Remove every image no container uses.")
@pass_client
async def prune(client: AsyncClient, all_: bool) -> None:
    """Remove images no container uses (needs --all, as ctr)."""
    if not all_:
        raise click.UsageError("give --all to remove every image no container uses")
    used = {c.image for c in await client.list_containers()}
    for img in await client.list_images():
        if img.name not in used:
            await client.delete_image(img.name)
            click.echo(img.name)


@images.command("tag")
@click.option("--force", is_flag=True, help="Replace an existing target image.")
@click.argument("source")
@click.argument("targets", nargs=-1, required=True)
@pass_client
async def tag(client: AsyncClient, force: bool, source: str, targets: tuple[str, ...]) -> None:
    """Give SOURCE more names."""
    for t in targets:
        await client.tag_image(source, t, force=force)
        click.echo(t)


@images.command("check")
@quiet_option
@format_option
@click.option("--snapshotter", default="overlayfs", show_default=True)
@click.argument("filters", nargs=-1)
@pass_client
async def check(client: AsyncClient, quiet: bool, fmt: str, snapshotter: str, filters: tuple[str, ...]) -> None:
    """Check that images have all their content (and are unpacked)."""
    imgs = sorted(await client.list_images(*filters), key=lambda i: i.name)
    rows, items = [], []
    for img in imgs:
        try:
            res = await img.check(snapshotter=snapshotter)
        except (NotFound, InvalidArgument) as exc:
            rows.append([img.name, img.target.media_type, img.target.digest, "missing", "-", "false"])
            items.append({"name": img.name, "status": "missing", "error": str(exc)})
            continue
        n_req, n_have = len(res.required), len(res.present)
        status = f"{'complete' if res.complete else 'incomplete'} ({n_have}/{n_req})"
        size = f"{human_size(res.present_size)}/{human_size(res.required_size)}"
        rows.append([img.name, img.target.media_type, img.target.digest, status, size,
                     "true" if res.unpacked else "false"])
        items.append({"name": img.name, "complete": res.complete, "present": n_have, "required": n_req,
                      "present_size": res.present_size, "required_size": res.required_size,
                      "unpacked": res.unpacked, "missing": [d.digest for d in res.missing]})
    echo_listing(fmt, quiet, ["REF", "TYPE", "DIGEST", "STATUS", "SIZE", "UNPACKED"], rows, items,
                 [i.name for i in imgs])


@images.command("inspect")
@click.option("--platform", "platform_", metavar="OS/ARCH[/VARIANT]")
@click.argument("ref")
@pass_client
async def inspect(client: AsyncClient, platform_: str | None, ref: str) -> None:
    """Print an image's record, manifest and config as JSON."""
    img = await client.get_image(ref)
    out = {"name": img.name, "target": img.target, "labels": dict(img.labels),
           "platforms": await img.platforms()}
    out["manifest"] = await img.manifest(platform_)
    out["config"] = await img.config(platform_)
    out["size"] = await img.size(platform_)
    click.echo(dumps(out))


@images.command("export")
@click.option("--platform", "platform_", metavar="OS/ARCH[/VARIANT]", help="Export this platform (default: host's).")
@click.option("--all-platforms", is_flag=True, help="Export every platform.")
@click.option("--skip-manifest-json", is_flag=True, help="Do not add docker's manifest.json.")
@click.option("--skip-non-distributable", is_flag=True, help="Leave out non-distributable layers.")
@click.argument("out", type=click.Path(dir_okay=False, allow_dash=True))
@click.argument("refs", nargs=-1, required=True)
@pass_client
async def export(client: AsyncClient, platform_: str | None, all_platforms: bool, skip_manifest_json: bool,
                 skip_non_distributable: bool, out: str, refs: tuple[str, ...]) -> None:
    """Write images to OUT as an OCI layout tar (with docker's manifest.json); - is stdout.

    \b
    Example:
      pyctr images export busybox.tar docker.io/library/busybox:latest
    """
    progress = make_progress(sys.stderr, plain=False)
    kw = dict(platform=platform_, all_platforms=all_platforms, docker_manifest=not skip_manifest_json,
              skip_non_distributable=skip_non_distributable, progress=progress)
    if out == "-":
        await client.export_archive(sys.stdout.buffer, *refs, **kw)
    else:
        tmp = f"{out}.tmp-{os.getpid()}"
        try:
            await client.export_archive(tmp, *refs, **kw)
            os.replace(tmp, out)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    progress.close(summary=False)


@images.command("import")
@click.option("--base-name", metavar="NAME", help="Name for images the archive names by tag only.")
@click.option("--digests", is_flag=True, help="Also name each image NAME@DIGEST.")
@click.option("--index-name", metavar="NAME", help="Also record the whole index under NAME.")
@click.option("--platform", "platform_", metavar="OS/ARCH[/VARIANT]", help="Unpack this platform.")
@click.option("--all-platforms", is_flag=True, help="(content of every platform is always imported)")
@click.option("--no-unpack", is_flag=True, help="Do not unpack the layers.")
@click.option("--snapshotter", default="overlayfs", show_default=True)
@click.argument("source", type=click.Path(dir_okay=False, allow_dash=True, exists=False))
@pass_client
async def import_(client: AsyncClient, base_name: str | None, digests: bool, index_name: str | None,
                  platform_: str | None, all_platforms: bool, no_unpack: bool, snapshotter: str, source: str) -> None:
    """Import images from an OCI layout tar or a docker archive (- is stdin).

    \b
    Example:
      pyctr images import busybox.tar
      skopeo copy docker://busybox docker-archive:/dev/stdout | pyctr images import -
    """
    progress = make_progress(sys.stdout)
    src = sys.stdin.buffer if source == "-" else source
    imgs = await client.import_archive(src, base_name=base_name, digests=digests, index_name=index_name,
                                       platform=platform_, all_platforms=all_platforms, unpack=False,
                                       snapshotter=snapshotter, progress=progress)
    progress.close(summary=False)
    for img in imgs:
        if no_unpack:
            click.echo(f"imported {img.name} ({img.target.digest})")
            continue
        click.echo(f"unpacking {img.name} ({img.target.digest})...", nl=False)
        try:
            await img.unpack(snapshotter, platform_)
            click.echo("done")
        except NotFound:
            click.echo("skipped (no content for this platform)")


def _mount_lease_id(target: str) -> str:
    return "pyctr-mount-" + hashlib.sha256(os.path.abspath(target).encode()).hexdigest()[:16]


@images.command("mount")
@click.option("--rw", is_flag=True, help="A writable snapshot (default: read-only view).")
@click.option("--platform", "platform_", metavar="OS/ARCH[/VARIANT]")
@click.option("--snapshotter", default="overlayfs", show_default=True)
@click.argument("ref")
@click.argument("target", type=click.Path(file_okay=False))
@pass_client
async def mount(client: AsyncClient, rw: bool, platform_: str | None, snapshotter: str, ref: str,
                target: str) -> None:
    """Mount an image's root filesystem on TARGET (unpacking it if needed)."""
    from datetime import timedelta

    from ..mount import mount_all

    img = await client.get_image(ref)
    target = os.path.abspath(target)
    if not os.path.isdir(target):  # as ctr: the mount point must exist
        raise NotFound(f"{target}: no such directory (create the mount point first)")
    if not await img.is_unpacked(snapshotter, platform_):
        await img.unpack(snapshotter, platform_)
    chain = await img.chain_id(platform_)
    try:
        lease = await client.create_lease(_mount_lease_id(target), expire=timedelta(hours=24),
                                          labels={f"containerd.io/gc.ref.snapshot.{snapshotter}": target})
    except AlreadyExists:
        raise AlreadyExists(f"{target}: already used by `pyctr images mount` (still mounted, or unmounted "
                            f"without --rm); run `pyctr images unmount --rm {target}` first") from None
    snaps = client.snapshotter(snapshotter)
    from ..client.connection import using_lease

    try:
        with using_lease(lease.id):
            mounts = await (snaps.prepare(target, chain) if rw else snaps.view(target, chain))
        await asyncio.to_thread(mount_all, mounts, target)
    except BaseException:
        with contextlib.suppress(Exception):
            await snaps.remove(target)
        with contextlib.suppress(Exception):
            await client.delete_lease(lease.id)
        raise
    click.echo(target)


@images.command("unmount")
@click.option("--rm", "remove", is_flag=True, help="Also remove the snapshot.")
@click.option("--snapshotter", default="overlayfs", show_default=True)
@click.argument("target", type=click.Path(file_okay=False))
@pass_client
async def unmount(client: AsyncClient, remove: bool, snapshotter: str, target: str) -> None:
    """Unmount what `images mount` mounted on TARGET."""
    from ..mount import unmount_all

    target = os.path.abspath(target)
    await asyncio.to_thread(unmount_all, target)
    if remove:
        with contextlib.suppress(NotFound):
            await client.snapshotter(snapshotter).remove(target)
        with contextlib.suppress(NotFound):
            await client.delete_lease(_mount_lease_id(target))
    click.echo(target)


