"""``pycontainerd-shim``: the per-task shim (containerd's runtime v2 binary contract).

All logic lives in :mod:`pycontainerd.shim.main`.
"""

from __future__ import annotations

from pycontainerd.shim.main import main

if __name__ == "__main__":
    main()
