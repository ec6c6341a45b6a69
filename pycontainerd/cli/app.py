"""The ``pyctr`` root command: global options, connecting, and error reporting.

Every command that talks to the daemon is an ``async def`` taking the connected
:class:`~pycontainerd.client.AsyncClient` first, turned into a click callback by
:func:`pass_client`. A command returns ``None`` (exit 0) or an ``int`` exit code (``run``
and ``tasks start`` pass the task's code through). Errors print one line,
``pyctr: <message>``, on stderr and exit 1 — with a traceback only under ``--debug``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import os
import sys
import traceback
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click
import grpc

from ..client.connection import DEFAULT_ADDRESS, is_transport_failure
from ..errdefs import ContainerdError

if TYPE_CHECKING:
    from ..client import AsyncClient

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class ExitCode(Exception):
    """Leave with this status without printing anything."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class Settings:
    """The global options, as every command sees them."""

    address: str = DEFAULT_ADDRESS
    namespace: str = "default"
    timeout: float = 0.0
    connect_timeout: float = 10.0
    debug: bool = False
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None

    def client(self) -> AsyncClient:
        from ..client.client import AsyncClient, TLSConfig

        tls = None
        if self.tls_ca or self.tls_cert or self.tls_key:
            tls = TLSConfig(self.tls_ca, self.tls_cert, self.tls_key)
        return AsyncClient(self.address, self.namespace, timeout=self.connect_timeout, tls=tls)


def error_message(exc: BaseException) -> str:
    """One line saying what went wrong."""
    if isinstance(exc, grpc.RpcError) and hasattr(exc, "details"):
        text = exc.details() or str(exc.code())
    elif isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.filename + ': ' if exc.filename else ''}{exc.strerror}"
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def run(settings: Settings, fn: Callable[[AsyncClient], Awaitable[Any]], connect: bool = True) -> None:
    """Connect, run ``fn(client)``, and exit as described in the module doc."""

    async def main() -> Any:
        client = settings.client()
        try:
            if connect:
                await client.connect()
            if settings.timeout and settings.timeout > 0:
                async with asyncio.timeout(settings.timeout):
                    return await fn(client)
            return await fn(client)
        except grpc.RpcError as exc:  # a raw call outside the client's mapping
            if is_transport_failure(exc):
                raise await client.conn.lost(exc) from exc
            raise
        finally:
            await client.close()

    code = 0
    try:
        result = asyncio.run(main())
        if isinstance(result, int) and not isinstance(result, bool):
            code = result
    except ExitCode as exc:
        code = exc.code
    except click.exceptions.Exit:
        raise
    except (click.ClickException, click.Abort):
        raise
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:
        code = 0
    except TimeoutError as exc:
        _report(settings, exc, f"timed out after {settings.timeout:g}s" if settings.timeout else "timed out")
        code = 1
    except (ContainerdError, grpc.RpcError, OSError, ValueError) as exc:
        _report(settings, exc, error_message(exc))
        code = 1
    except Exception as exc:  # an unexpected failure: still one line, traceback with --debug
        _report(settings, exc, f"{type(exc).__name__}: {error_message(exc)}")
        code = 1
    sys.stdout.flush()
    raise SystemExit(code)


def _report(settings: Settings, exc: BaseException, message: str) -> None:
    if settings.debug:
        traceback.print_exception(exc, file=sys.stderr)
    click.echo(f"pyctr: {message}", err=True)


def pass_client(fn: Callable[..., Awaitable[Any]]) -> Callable[..., None]:
    """Make ``async def fn(client, **options)`` a click callback (see module doc)."""

    @functools.wraps(fn)
    @click.pass_context
    def callback(ctx: click.Context, **kwargs: Any) -> None:
        settings = ctx.find_object(Settings) or Settings()
        run(settings, lambda client: fn(client, **kwargs))

    return callback


@contextlib.asynccontextmanager
async def each(items: Any):
    """For commands acting on several objects: an error with one is reported
    (``pyctr: …``) and the others still get done; the command then exits 1::

        async with each(ids) as attempt:
            for i in ids:
                async with attempt():
                    await something(i)
    """
    failed: list[BaseException] = []

    @contextlib.asynccontextmanager
    async def attempt():
        try:
            yield
        except (ContainerdError, grpc.RpcError, OSError) as exc:
            failed.append(exc)
            click.echo(f"pyctr: {error_message(exc)}", err=True)

    yield attempt
    if failed:
        raise ExitCode(1)


def format_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--format table|json``."""
    return click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
                        show_default=True, help="Output format.")(fn)


def quiet_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("-q", "--quiet", is_flag=True, help="Print only the names (or ids).")(fn)


def env_default(*names: str, default: str) -> str:
    for n in names:
        v = os.environ.get(n)
        if v:
            return v
    return default


def configure_logging(debug: bool) -> None:
    """Debug logs with ``--debug``; otherwise :mod:`pycontainerd.log` sets warnings on stderr
    itself when some command's code first imports it (structlog is not loaded for nothing)."""
    if debug:
        from .. import log

        log.configure("debug")


class LazyGroup(click.Group):
    """A group whose subcommands are imported when used (``pyctr version`` loads neither
    the image code nor LMDB), and which resolves ctr's short names (``c``, ``t``, ``ns`` …)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._package = ""
        self._lazy: Mapping[str, tuple[str, str]] = {}
        self._aliases: Mapping[str, str] = {}

    def lazy(self, package: str, commands: Mapping[str, tuple[str, str]], aliases: Mapping[str, str]) -> None:
        """Add ``commands`` (name → (module under ``package``, attribute)) and ``aliases``."""
        self._package, self._lazy, self._aliases = package, commands, aliases

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        cmd_name = self._aliases.get(cmd_name, cmd_name)
        if cmd_name not in self.commands and cmd_name in self._lazy:
            module, attr = self._lazy[cmd_name]
            self.add_command(getattr(importlib.import_module(f"{self._package}.{module}"), attr), cmd_name)
        return super().get_command(ctx, cmd_name)

    def resolve_command(self, ctx: click.Context, args: list[str]):
        if args and args[0] in self._aliases:
            args = [self._aliases[args[0]], *args[1:]]
        return super().resolve_command(ctx, args)


@click.group(cls=LazyGroup, context_settings=CONTEXT_SETTINGS,
             epilog="Examples:\n\n\b\n"
                    "  pyctr images pull --plain-http 127.0.0.1:5000/library/busybox:latest\n"
                    "  pyctr run --rm -t docker.io/library/busybox:latest demo sh\n"
                    "  pyctr run -d IMAGE web sleep 1000 && pyctr tasks exec web ls /\n"
                    "  pyctr -n k8s.io containers ls --format json\n\n"
                    "Shell completion: eval \"$(pyctr completion bash)\"")
@click.option("-a", "--address", metavar="PATH",
              default=lambda: env_default("PYCONTAINERD_ADDRESS", "CONTAINERD_ADDRESS", default=DEFAULT_ADDRESS),
              show_default="$PYCONTAINERD_ADDRESS, $CONTAINERD_ADDRESS or " + DEFAULT_ADDRESS,
              help="Daemon address: a unix socket path, or host:port (TCP, with --tls-*).")
@click.option("-n", "--namespace", metavar="NAME",
              default=lambda: env_default("PYCONTAINERD_NAMESPACE", "CONTAINERD_NAMESPACE", default="default"),
              show_default="$PYCONTAINERD_NAMESPACE, $CONTAINERD_NAMESPACE or default",
              help="Namespace to work in.")
@click.option("--timeout", type=click.FloatRange(min=0), default=0.0, metavar="SECONDS",
              help="Give up on the whole command after this long (0: never).")
@click.option("--connect-timeout", type=click.FloatRange(min=0, min_open=True), default=10.0, show_default=True,
              metavar="SECONDS",
              help="How long to wait for the daemon to answer.")
@click.option("--tls-ca", type=click.Path(dir_okay=False), help="CA certificate to verify a TCP daemon.")
@click.option("--tls-cert", type=click.Path(dir_okay=False), help="Client certificate (TCP).")
@click.option("--tls-key", type=click.Path(dir_okay=False), help="Client key (TCP).")
@click.option("--debug", is_flag=True, help="Debug logs, and a traceback with errors.")
@click.version_option(package_name="pycontainerd", prog_name="pyctr", message="%(prog)s version %(version)s")
@click.pass_context
def cli(ctx: click.Context, address: str, namespace: str, timeout: float, connect_timeout: float,
        tls_ca: str | None, tls_cert: str | None, tls_key: str | None, debug: bool) -> None:
    """pyctr: the command line for pycontainerd (and any containerd), shaped like ctr."""
    if not address:
        raise click.BadParameter("the daemon address is empty", param_hint="'-a' / '--address'")
    configure_logging(debug)
    ctx.obj = Settings(address, namespace, timeout, connect_timeout, debug, tls_ca, tls_cert, tls_key)
