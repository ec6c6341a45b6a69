"""``pyctr run`` (create a container and run its task, like ``ctr run``) and the flags it
shares with ``pyctr containers create``."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from ..client.connection import DaemonUnreachable
from ..errdefs import NotFound, Unavailable
from .app import CONTEXT_SETTINGS, pass_client
from .specs import RunOptions, labels_from, spec_options

if TYPE_CHECKING:
    from ..client import AsyncClient
    from ..client.containers import AsyncContainer


def spec_flags(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The container flags of ``run`` and ``containers create``."""
    flags = [
        click.option("-e", "--env", multiple=True, metavar="KEY=VALUE", help="Set an environment variable."),
        click.option("--env-file", multiple=True, type=click.Path(dir_okay=False),
                     help="Read KEY=VALUE lines from a file."),
        click.option("--mount", multiple=True, metavar="type=bind,src=…,dst=…,options=rbind:ro",
                     help="Add a mount."),
        click.option("-u", "--user", metavar="USER[:GROUP]", help="Run as this user (name or uid)."),
        click.option("--cwd", metavar="DIR", help="Working directory of the process."),
        click.option("--hostname", help="The container's hostname."),
        click.option("--memory-limit", metavar="SIZE", help="Memory limit: bytes, or 64m, 1GiB, …"),
        click.option("--cpus", type=float, help="CPU limit, e.g. 0.5."),
        click.option("--net-host", is_flag=True, help="Use the host's network."),
        click.option("-t", "--tty", is_flag=True, help="Allocate a terminal."),
        click.option("--privileged", is_flag=True, help="Every capability and device; no confinement."),
        click.option("--read-only", is_flag=True, help="Read-only root filesystem."),
        click.option("--seccomp", is_flag=True, help="Apply containerd's default seccomp profile."),
        click.option("--cap-add", multiple=True, metavar="CAP_…", help="Add a capability."),
        click.option("--cap-drop", multiple=True, metavar="CAP_…", help="Drop a capability."),
        click.option("--allow-new-privs", is_flag=True, help="Turn off no_new_privileges."),
        click.option("--label", multiple=True, metavar="KEY=VALUE", help="Label the container."),
        click.option("--annotation", multiple=True, metavar="KEY=VALUE", help="Add an OCI annotation."),
        click.option("--snapshotter", default="overlayfs", show_default=True, help="Snapshotter for the rootfs."),
        click.option("--runtime", default="io.containerd.runc.v2", show_default=True, help="Runtime name."),
        click.option("--platform", "platform_", metavar="OS/ARCH[/VARIANT]", help="Image platform to use."),
    ]
    for f in reversed(flags):
        fn = f(fn)
    return fn


async def find_image(client: AsyncClient, ref: str):
    """The image named ``ref`` — or, failing that, its normalised name
    (``busybox`` → ``docker.io/library/busybox:latest``). Raises ``NotFound`` with a hint."""
    from ..errdefs import InvalidArgument, quote
    from ..remotes.reference import normalize

    try:
        return await client.get_image(ref)
    except NotFound:
        pass
    try:
        full = normalize(ref)
    except InvalidArgument:
        full = ref
    if full != ref:
        try:
            return await client.get_image(full)
        except NotFound:
            pass
    err = NotFound(f"image {quote(ref)}")
    err.args = (f"{err} (pull it first: pyctr images pull {ref})",)
    raise err


async def create_container(client: AsyncClient, image_ref: str, container_id: str, args: tuple[str, ...],
                           kw: dict[str, Any]) -> AsyncContainer:
    """Make the container the flags describe (the image must be in the daemon)."""
    image = await find_image(client, image_ref)
    ro = RunOptions(args=args, env=kw.pop("env"), env_files=kw.pop("env_file"), mounts=kw.pop("mount"),
                    user=kw.pop("user"), cwd=kw.pop("cwd"), hostname=kw.pop("hostname"),
                    memory_limit=kw.pop("memory_limit"), cpus=kw.pop("cpus"), net_host=kw.pop("net_host"),
                    tty=kw.pop("tty"), privileged=kw.pop("privileged"), read_only=kw.pop("read_only"),
                    seccomp=kw.pop("seccomp"), cap_add=kw.pop("cap_add"), cap_drop=kw.pop("cap_drop"),
                    allow_new_privs=kw.pop("allow_new_privs"), annotations=kw.pop("annotation"))
    opts = spec_options(ro)
    return await client.new_container(container_id, image, *opts, snapshotter=kw.pop("snapshotter"),
                                      labels=labels_from(kw.pop("label")), runtime=kw.pop("runtime"),
                                      platform=kw.pop("platform_"))


@click.command("run", context_settings={**CONTEXT_SETTINGS, "allow_interspersed_args": False})
@click.option("--rm", "remove", is_flag=True, help="Remove the container when the task exits.")
@click.option("-d", "--detach", is_flag=True, help="Start the task and return.")
@click.option("--null-io", is_flag=True, help="Send the output nowhere.")
@click.option("--log-uri", metavar="URI", help="Send the output to file:///path, binary:///path or a path.")
@click.option("--fifo-dir", type=click.Path(file_okay=False), help="Where to make the stdio fifos.")
@spec_flags
@click.argument("image")
@click.argument("container_id", metavar="ID")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@pass_client
async def run(client: AsyncClient, remove: bool, detach: bool, null_io: bool, log_uri: str | None,
              fifo_dir: str | None, image: str, container_id: str, args: tuple[str, ...], **kw: Any) -> int:
    """Run a command in a new container; exits with the command's exit code.

    \b
    Examples:
      pyctr run --rm docker.io/library/busybox:latest hello echo hello
      pyctr run --rm -t IMAGE shell sh
      pyctr run -d --memory-limit 64m IMAGE web sleep 1000
      pyctr run --rm --env-file app.env --mount type=bind,src=/srv,dst=/srv,options=rbind:ro IMAGE job ./job
    """
    if remove and detach:
        raise click.UsageError("--rm and --detach do not go together")
    from .attach import stdio_creator  # the task's stdio: not for `containers create` (nor ls)

    tty = bool(kw.get("tty"))
    container = await create_container(client, image, container_id, args, kw)
    daemon_gone = False
    try:
        if detach:
            creator = stdio_creator(terminal=tty, null_io=null_io or not (log_uri or fifo_dir), log_uri=log_uri,
                                    fifo_dir=fifo_dir)
            task = await container.new_task(stdio=creator)
            try:
                await task.start()
            except BaseException:
                with contextlib.suppress(Exception):
                    await task.delete()
                raise
            return 0
        return await run_task(container, tty=tty, null_io=null_io, log_uri=log_uri, fifo_dir=fifo_dir)
    except DaemonUnreachable:
        daemon_gone = True  # nothing can be cleaned up through it: say what may be left
        raise
    except BaseException:
        if detach:  # a detached run that did not start leaves nothing behind
            with contextlib.suppress(Exception):
                await container.delete()
        raise
    finally:
        if remove and not daemon_gone:
            with contextlib.suppress(NotFound):
                await container.delete()


async def run_task(container: AsyncContainer, *, tty: bool, null_io: bool = False, log_uri: str | None = None,
                   fifo_dir: str | None = None) -> int:
    """Create the container's task with our stdio, start it, wait, delete it; returns its
    exit code (what ``run`` and ``tasks start`` do)."""
    from .attach import foreground, raw_terminal, stdio_creator

    creator = stdio_creator(terminal=tty, null_io=null_io, log_uri=log_uri, fifo_dir=fifo_dir)
    with raw_terminal(tty):
        task = await container.new_task(stdio=creator)
        try:
            async with foreground(task, terminal=tty):
                await task.start()
                status = await _wait(task)
        except DaemonUnreachable as exc:
            raise _left_running(exc, container) from exc
        except BaseException:
            with contextlib.suppress(Exception):
                await task.kill(9)
                await task.wait()
            with contextlib.suppress(Exception):
                await task.delete()
            raise
        await task.delete()
    return status.code



async def _wait(task):
    """``task.wait()``; once more if the daemon restarted while we waited (a wait changes
    nothing, so asking again is safe)."""
    try:
        return await task.wait()
    except DaemonUnreachable:
        raise
    except Unavailable:
        return await task.wait()


def _left_running(exc: DaemonUnreachable, container: AsyncContainer) -> DaemonUnreachable:
    """``exc`` plus what a user needs when the daemon died under ``pyctr run``: the task's
    shim outlives the daemon, so the container may still be running."""
    ns = container._client.namespace
    flag = "" if ns == "default" else f"-n {ns} "
    return DaemonUnreachable(
        f"{exc.context}; container {container.id} may still be running (its shim outlives the daemon): "
        f"once the daemon is back, `pyctr {flag}tasks ls` lists it and `pyctr {flag}tasks kill {container.id}` "
        "stops it")
