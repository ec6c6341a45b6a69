"""The operator side of one daemon run: the debug and metrics endpoints, the ``SIGUSR1``
stack dump and systemd's readiness notice (see :mod:`.debug`)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Sequence

from ..config import Config
from ..plugin import PluginSet
from .debug import debug_handler, log_stacks, sd_notify
from ..listen.http import HTTPServer

class Operations:
    """The debug and metrics endpoints, the ``SIGUSR1`` handler and systemd's readiness
    notice of one daemon run.

    ``start()`` once the gRPC server serves (it then tells systemd the daemon is ready),
    ``stop()`` after the gRPC server stopped and before the plugins close (a scrape reads
    their stores).
    """

    def __init__(self, cfg: Config, plugins: PluginSet, services: Sequence[str] = ()) -> None:
        self.cfg = cfg
        self.plugins = plugins
        self.services = services  # the gRPC server's service names, for the metrics' zero series
        self.debug: HTTPServer | None = None
        self.metrics = None  # .metrics.MetricsEndpoint, loaded only when configured
        self._signal = False

    async def start(self) -> None:
        """Raises :class:`InvalidArgument` (bad address) or :class:`FailedPrecondition`
        (address in use); whatever had started is stopped again."""
        try:
            if self.cfg.metrics.address:
                from .metrics import MetricsEndpoint

                self.metrics = MetricsEndpoint(self.plugins, grpc_histogram=self.cfg.metrics.grpc_histogram,
                                               services=self.services)
                await self.metrics.start(self.cfg.metrics.address)
            if self.cfg.debug.address:
                self.debug = HTTPServer("debug", debug_handler)
                await self.debug.start(self.cfg.debug.address, self.cfg.debug.uid, self.cfg.debug.gid)
        except BaseException:
            await self.stop()
            raise
        with contextlib.suppress(NotImplementedError, RuntimeError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, log_stacks)
            self._signal = True
        sd_notify("READY=1")

    async def stop(self) -> None:
        sd_notify("STOPPING=1")
        if self._signal:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_signal_handler(signal.SIGUSR1)
            self._signal = False
        if self.debug is not None:
            await self.debug.close()
            self.debug = None
        if self.metrics is not None:
            await self.metrics.close()
            self.metrics = None
