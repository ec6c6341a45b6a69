"""``pycontainerd``: the daemon's command line (flags as containerd's)."""

from __future__ import annotations

import os
import sys

# Before anything imports grpc (it reads these once): the daemon forks children (runc, shims,
# mount helpers) while gRPC threads run, and gRPC's fork handlers would then print raw
# ``fork_posix.cc ... skipping fork() handlers`` lines into the structured log; every child
# execs at once, so it needs no handlers. gRPC core's own info/warning chatter stays off too
# (its errors still print). A value set in the environment wins.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
from pathlib import Path

import click

from pycontainerd import config as config_mod
from pycontainerd import log
from pycontainerd.errdefs import ContainerdError, InvalidArgument
from pycontainerd.version import PACKAGE, REVISION, VERSION


def _registry():
    import pycontainerd_plugins

    return pycontainerd_plugins.registry()


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "-c", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help=f"config file (default {config_mod.DEFAULT_CONFIG_PATH})")
@click.option("--root", help=f"persistent state directory (default {config_mod.DEFAULT_ROOT})")
@click.option("--state", help=f"runtime state directory (default {config_mod.DEFAULT_STATE})")
@click.option("--address", "-a", help=f"unix socket to serve on (default {config_mod.DEFAULT_ADDRESS})")
@click.option("--log-level", "-l", help="trace, debug, info, warn, error (default info)")
@click.option("--log-format", type=click.Choice(["text", "json"]), help="log line format (default text)")
@click.version_option(VERSION, "--version", "-v", message=f"%(prog)s {PACKAGE} %(version)s {REVISION}".rstrip(),
                      prog_name="pycontainerd")
@click.pass_context
def main(ctx, config_path, root, state, address, log_level, log_format):
    """A container runtime daemon, wire-compatible with containerd."""
    if ctx.invoked_subcommand is not None:
        return
    try:
        cfg = config_mod.load(config_path)
        for flag, value in (("--root", root), ("--state", state), ("--address", address)):
            if value is not None and not value.strip():  # never fall back to the system's own dirs
                raise InvalidArgument(f"{flag} is empty: give a path, or leave the flag out for the default")
        if root:
            cfg.root = root
        if state:
            cfg.state = state
        if address:
            cfg.grpc.address = address
        if log_level:
            cfg.debug.level = log_level
        if log_format:
            cfg.debug.format = log_format
        log.configure(cfg.debug.level, cfg.debug.format)
    except (ContainerdError, ValueError) as exc:
        _exit_with(exc)

    from pycontainerd.server import daemon

    try:
        daemon.main(cfg, _registry())  # asyncio, on uvloop when available (server.daemon)
    except ContainerdError as exc:
        _exit_with(exc)


def _exit_with(exc: Exception) -> None:
    """A start-up error: one plain line ``pycontainerd: <what and how to fix it>`` on stderr
    (not also a structured log line), exit status 1."""
    click.echo(f"pycontainerd: {exc}", err=True)
    sys.exit(1)


@main.group()
def config():
    """Inspect the configuration."""


@config.command("default")
def config_default():
    """Print the default configuration (every option, plugin tables included)."""
    from pycontainerd.plugin import build_config

    defaults = {}
    for reg in _registry():
        if reg.config is not None:
            defaults[reg.uri] = build_config(reg, None)
    click.echo(config_mod.default_toml(defaults), nl=False)


if __name__ == "__main__":
    main()
