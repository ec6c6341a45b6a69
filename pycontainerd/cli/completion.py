"""``pyctr completion``: the shell completion script (click's)."""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

from .app import CONTEXT_SETTINGS


@click.command("completion", context_settings=CONTEXT_SETTINGS)
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]), default="bash")
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the completion script for SHELL.

    \b
    Examples:
      eval "$(pyctr completion bash)"          # in ~/.bashrc
      pyctr completion fish > ~/.config/fish/completions/pyctr.fish
    """
    cls = get_completion_class(shell)
    root = ctx.find_root()
    comp = cls(root.command, {}, "pyctr", "_PYCTR_COMPLETE")
    click.echo(comp.source())
