"""``pycontainerd.log.enabled``: the hot-path level check follows the level in force."""

from __future__ import annotations

import logging

import structlog

from pycontainerd import log


def test_enabled_follows_configure_and_set_level() -> None:
    saved = structlog.get_config()
    try:
        log.configure("info")
        assert log.enabled(logging.INFO) and not log.enabled(logging.DEBUG)
        log.set_level("debug")
        assert log.enabled(logging.DEBUG)
        log.set_level("error")
        assert log.enabled(logging.ERROR) and not log.enabled(logging.WARNING)
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
        assert log.enabled(logging.WARNING) and not log.enabled(logging.INFO)  # any reconfiguration
    finally:
        structlog.configure(**saved)
