"""The consistency checker (``pycontainerd.admin.check``) on a live daemon, after deletes.

Garbage collection runs at containerd's pause threshold: a collection waits until collecting
takes at most 2% of the daemon's time, so a snapshot or blob a delete released is swept a
moment later, not at once. :func:`settled_check` gives the collector that moment."""

from __future__ import annotations

import time

from pycontainerd.admin.check import Report, check


def settled_check(daemon, timeout: float = 30.0) -> Report:
    """``check(daemon.root, daemon.state)`` once it is clean, or its last report after
    ``timeout`` seconds (a real problem stays and fails the caller's assertion)."""
    deadline = time.monotonic() + timeout
    report = check(daemon.root, daemon.state)
    while not report.ok and time.monotonic() < deadline:
        time.sleep(0.2)
        report = check(daemon.root, daemon.state)
    return report
