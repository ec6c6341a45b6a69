"""The per-RPC metrics hook, kept free of imports so that the interceptor pays nothing for
it while metrics are off (the exporter, :mod:`pycontainerd.server.metrics`, loads
``prometheus-client`` only when ``[metrics] address`` is set).

The gRPC interceptor calls :func:`observe_rpc` once at the end of every call; the exporter
installs its sink with :func:`set_sink` while it serves.
"""

from __future__ import annotations

from typing import Any, Protocol


class RPCSink(Protocol):
    def observe(self, method: str, outcome: str, context: Any, started: float) -> None: ...


_sink: RPCSink | None = None


def set_sink(sink: RPCSink | None) -> RPCSink | None:
    """Install ``sink`` (None: metrics off); returns the one it replaces."""
    global _sink
    old, _sink = _sink, sink
    return old


def sink() -> RPCSink | None:
    return _sink


def observe_rpc(method: str, outcome: str, context: Any, started: float) -> None:
    """Count one finished call: ``method`` is ``/pkg.Service/Method``, ``outcome`` the
    interceptor's (``OK``, ``CANCELLED``, ``ERROR``, ``ABORTED_BY_HANDLER``), ``context`` the
    call's servicer context (its status code is read from it), ``started`` the
    :func:`time.monotonic` of its start. One global read when metrics are off."""
    s = _sink
    if s is not None:
        s.observe(method, outcome, context, started)
