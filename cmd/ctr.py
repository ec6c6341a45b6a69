"""``pyctr``: the ctr-like command line (the logic lives in :mod:`pycontainerd.cli`)."""

from __future__ import annotations

from pycontainerd.cli import main

if __name__ == "__main__":
    main()
