"""``pyctr``: the ctr-like command line (its commands arrive with the client library)."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """Command-line client for pycontainerd (and any containerd)."""


if __name__ == "__main__":
    main()
