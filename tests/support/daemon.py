"""The daemon test helper lives in :mod:`pycontainerd.testing` (the pytest plugin we ship)."""

from pycontainerd.testing import Daemon

__all__ = ["Daemon"]
