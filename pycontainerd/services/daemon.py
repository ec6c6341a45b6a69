"""The daemon's life: lock the root, initialise plugins, serve, stop cleanly on a signal.

``SIGTERM``/``SIGINT``: stop accepting calls, let in-flight calls finish (up to
``SHUTDOWN_GRACE`` seconds), close plugins in reverse order, exit 0. Containers (their
shims) are not stopped: they outlive the daemon by design.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import signal
from pathlib import Path

from ..config import Config
from ..errdefs import FailedPrecondition
from ..log import get_logger
from ..plugin import Registry, close_all, initialize
from .server import Server

log = get_logger("daemon")

SHUTDOWN_GRACE = 10.0  # seconds


class RootLock:
    """An exclusive ``flock`` on ``<dir>/pycontainerd.lock`` for the daemon's lifetime, so
    two daemons never share one ``--root`` or one ``--state`` (where shims are found).
    The file holds the owner's pid (informative)."""

    def __init__(self, root: Path) -> None:
        self.path = root / "pycontainerd.lock"
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(self.fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(self.fd)
            raise FailedPrecondition(
                f"{root} is in use by another pycontainerd (pid {owner}); "
                "stop it or choose another --root/--state"
            ) from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        os.close(self.fd)


async def run(cfg: Config, registry: Registry) -> None:
    """Run the daemon until SIGTERM or SIGINT.

    Raises:
        FailedPrecondition: root locked by another daemon, socket in use, a required plugin
            failed, or a plugin dependency cycle.
        InvalidArgument: bad listener configuration.
    """
    root, state = Path(cfg.root).absolute(), Path(cfg.state).absolute()
    root.mkdir(parents=True, exist_ok=True, mode=0o711)
    state.mkdir(parents=True, exist_ok=True, mode=0o711)
    lock = RootLock(root)
    try:
        state_lock = RootLock(state)
    except FailedPrecondition:
        lock.release()
        raise
    plugins = None
    server = None
    try:
        order = registry.graph(cfg.disabled_plugins)
        plugins = await initialize(order, cfg, cfg.plugins, root, state)
        for uri in cfg.required_plugins:
            plugin = plugins.by_uri.get(uri)
            if plugin is None or not plugin.ok:
                reason = "not registered or disabled" if plugin is None else str(plugin.error)
                raise FailedPrecondition(f"required plugin {uri} did not load: {reason}")

        server = Server(cfg.grpc, plugins)
        await server.start()

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        ok = sum(1 for p in plugins if p.ok)
        log.info("pycontainerd successfully booted", plugins=ok, failed=len(plugins.by_uri) - ok,
                 root=str(root), state=str(state), pid=os.getpid())
        await stop.wait()
        log.info("stopping: waiting for in-flight calls", grace_seconds=SHUTDOWN_GRACE)
    finally:
        if server is not None:
            await server.stop(SHUTDOWN_GRACE)
        if plugins is not None:
            await close_all(plugins)
        state_lock.release()
        lock.release()
    log.info("stopped")
