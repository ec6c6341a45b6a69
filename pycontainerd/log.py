"""structlog setup: key-value lines to stderr, or JSON with ``--log-format json``.

Every line that concerns an object carries its ``namespace``, ``id`` and ``digest`` as keys;
per-request keys (``request_id``, ``method``, ``namespace``) are bound through
``structlog.contextvars`` by the gRPC interceptor, so they appear on every line logged
while serving that request.
"""

from __future__ import annotations

import logging
import sys


def _import_structlog():
    """structlog's ``dev`` module imports ``rich`` when it is installed (it is, for pyctr's
    progress display) to format tracebacks in its console renderer, which is not used here:
    some 50 modules and 5 MiB in the daemon and every shim. Importing structlog while
    ``rich`` reads as absent skips that; ``rich`` stays importable afterwards."""
    if "rich" in sys.modules:
        import structlog

        return structlog
    sys.modules["rich"] = None  # type: ignore[assignment]  # `import rich` raises ImportError
    try:
        import structlog
    finally:
        if sys.modules.get("rich", 0) is None:
            del sys.modules["rich"]
    return structlog


structlog = _import_structlog()

LEVELS = ("trace", "debug", "info", "warn", "warning", "error", "fatal", "panic")


def _std_level(level: str) -> int:
    level = level.lower()
    if level not in LEVELS:
        raise ValueError(f"unknown log level {level!r}; one of {', '.join(LEVELS)}")
    return {
        "trace": logging.DEBUG,
        "debug": logging.DEBUG,
        "info": logging.INFO,
        "warn": logging.WARNING,
        "warning": logging.WARNING,
        "error": logging.ERROR,
        "fatal": logging.CRITICAL,
        "panic": logging.CRITICAL,
    }[level]


_level = "info"


def level() -> str:
    """The level in force (as last given to :func:`configure` or :func:`set_level`)."""
    return _level


def configure(level: str = "info", fmt: str = "text") -> None:
    """Configure structlog for the process. ``fmt`` is ``text`` or ``json``.

    Raises ValueError for an unknown level or format.
    """
    if fmt not in ("text", "json"):
        raise ValueError(f"unknown log format {fmt!r}; one of text, json")
    renderer = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.processors.KeyValueRenderer(key_order=["time", "level", "event"], drop_missing=True)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_std_level(level)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    _remember(level)


def set_level(level: str) -> None:
    """Change the level at run time (keeps the renderer). Every logger follows at its next
    call: loggers are lazy proxies and are never cached (``cache_logger_on_first_use`` is
    off). Raises ValueError for an unknown level."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(_std_level(level)))
    _remember(level)


def _remember(value: str) -> None:
    global _level
    _level = value.lower()


def enabled(levelno: int) -> bool:
    """Whether a line at ``levelno`` (``logging.DEBUG`` …) is written at the level in force
    now — for hot paths that would otherwise build a line's values only to drop it. Follows
    every change of level (:func:`configure`, :func:`set_level`), at ~0.5 µs a call."""
    check = getattr(structlog.get_config()["wrapper_class"], "is_enabled_for", None)
    return True if check is None else check(None, levelno)


def get_logger(component: str) -> structlog.stdlib.BoundLogger:
    """A logger bound to ``component`` (``plugin``, ``server``, ``metadata`` …)."""
    # get_logger with initial values stays a lazy proxy: configure()/set_level() made later
    # still apply to loggers created at import time.
    return structlog.get_logger(component=component)


if not structlog.is_configured():
    # A library user (client, tests) who configured nothing gets warnings and errors on
    # stderr, not every debug line on stdout; the daemon calls configure() itself.
    configure("warn")
