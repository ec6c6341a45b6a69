"""``pycontainerd-shim``: the per-task shim (built with the runtime)."""

from __future__ import annotations

import sys


def main() -> None:
    sys.exit("pycontainerd-shim: the runtime v2 shim is not built yet")


if __name__ == "__main__":
    main()
