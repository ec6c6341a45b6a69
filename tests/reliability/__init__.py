"""Fault injection: kill -9 of the daemon and of shims at random points, disk full during a
pull (issue 9, "Faults"). Marked ``reliability``; :mod:`.harness` is shared with
``bench/faults.py`` (the long mode)."""
