"""``pyctr admin``: commands that read the daemon's state on disk instead of calling it.

``pyctr admin check`` runs :func:`pycontainerd.admin.check.check` and prints one line per
problem — ``NAMESPACE KIND ID: PROBLEM [fix: WHAT TO DO]`` — then a summary; exit status 0
when the state is consistent, 1 when problems were found, 2 when the state could not be
read (``--root`` or ``--state`` missing, or ``--root`` holding no metadata database: not a
daemon root). Every command in a fix is quoted for a POSIX shell. It needs read access
to ``--root``, ``--state`` and ``/proc`` (root, in practice) and works while the daemon
runs.
"""

from __future__ import annotations

import json
import sys

import click
import lmdb

from ..admin.check import DEFAULT_ROOT, DEFAULT_STATE, Report, check
from .app import CONTEXT_SETTINGS, format_option


@click.group("admin", context_settings=CONTEXT_SETTINGS)
def admin() -> None:
    """Inspect the daemon's state on disk (no daemon connection needed)."""


def _summary(report: Report) -> str:
    checked = ", ".join(f"{n} {kind}" for kind, n in report.checked.items() if n) or "nothing"
    daemon = "daemon running" if report.daemon_running else "daemon not running"
    verdict = "consistent" if report.ok else f"{len(report.problems)} problem(s)"
    return f"{verdict} ({daemon}; checked {checked})"


@admin.command("check", context_settings=CONTEXT_SETTINGS,
               epilog="Exit status: 0 consistent, 1 problems found, 2 state unreadable.\n\n"
                      "\b\nExamples:\n"
                      "  pyctr admin check\n"
                      "  pyctr admin check --root /tmp/pcd/root --state /tmp/pcd/state --format json")
@click.option("--root", default=DEFAULT_ROOT, show_default=True, type=click.Path(file_okay=False),
              help="The daemon's --root (metadata, content, snapshots).")
@click.option("--state", default=DEFAULT_STATE, show_default=True, type=click.Path(file_okay=False),
              help="The daemon's --state (task bundles, shims).")
@click.option("--verify-digests", is_flag=True, help="Also hash every blob (reads all content).")
@format_option
def check_command(root: str, state: str, verify_digests: bool, fmt: str) -> None:
    """Check that metadata, content, snapshots, mounts and shims agree.

    Every image's blobs, every container's snapshot and every lease's resources must exist;
    no snapshot directory, ingest, mount, shim or bundle may be left without an owner.
    One line per problem: NAMESPACE KIND ID: PROBLEM [fix: WHAT TO DO].
    """
    try:
        report = check(root, state, verify_digests=verify_digests)
    except OSError as exc:
        what = exc.strerror or str(exc)
        if exc.filename:
            what += f": {exc.filename}"
        click.echo(f"pyctr: cannot read the daemon state: {what}", err=True)
        sys.exit(2)
    except lmdb.Error as exc:
        click.echo(f"pyctr: cannot read the daemon state: {exc}", err=True)
        sys.exit(2)
    if fmt == "json":
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        for problem in report.problems:
            click.echo(problem.line())
        click.echo(_summary(report))
    sys.exit(0 if report.ok else 1)
