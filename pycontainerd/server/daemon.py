"""The daemon's life: lock the root, initialise plugins, serve, stop cleanly on a signal.

``SIGTERM``/``SIGINT``: stop accepting calls, let in-flight calls finish (up to
``SHUTDOWN_GRACE`` seconds), close plugins in reverse order, exit 0. Containers (their
shims) are not stopped: they outlive the daemon by design.

:func:`main` runs it on uvloop's event loop when installed (``$PYCONTAINERD_EVENT_LOOP=asyncio``
for asyncio's own), with a default executor of :data:`BLOCKING_WORKERS` threads for the
blocking work (``asyncio.to_thread``), and with the start-up heap frozen out of the cyclic
garbage collector.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import gc
import os
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..config import Config
from ..errdefs import FailedPrecondition, InvalidArgument
from ..log import get_logger
from ..plugin import PluginSet, Registry, close_all, initialize
from .operations import Operations
from .grpc_server import Server

log = get_logger("daemon")

SHUTDOWN_GRACE = 10.0  # seconds
BLOCKING_WORKERS = 32  # threads of the default executor (asyncio.to_thread)
GC_YOUNG_THRESHOLD = 10_000  # allocations between young-generation collections (Python's default: 700)


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


def _lock_directory(path: Path, flag: str) -> RootLock:
    """Create ``path`` (0711) if missing and lock it with a :class:`RootLock`.

    Raises:
        InvalidArgument: ``path`` cannot be a directory of ours (a file, under ``/proc``, on a
            read-only file system, …); the message names ``flag`` and ``path``.
        FailedPrecondition: another pycontainerd holds it.
    """
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o711)
        if not path.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        return RootLock(path)
    except OSError as exc:
        reason = "it exists and is not a directory" if isinstance(exc, FileExistsError) else exc.strerror
        raise InvalidArgument(f"{flag} {path}: cannot use it as a directory: {reason}") from exc


def _log_booted(plugins: PluginSet, root: Path, state: Path) -> None:
    """The boot line: at warning level, naming each plugin that failed and why, when any
    did (a skipped plugin — not for this host — is no failure)."""
    failed = [p for p in plugins if not p.ok and not p.skipped]
    ok = sum(1 for p in plugins if p.ok)
    fields = dict(plugins=ok, skipped=len(plugins.by_uri) - ok - len(failed), failed=len(failed),
                  root=str(root), state=str(state), pid=os.getpid())
    if failed:
        log.warning("pycontainerd booted, but plugins failed to load", **fields,
                    failures="; ".join(f"{p.registration.uri}: {p.error}" for p in failed))
    else:
        log.info("pycontainerd successfully booted", **fields)


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """The daemon's event loop: uvloop's (an asyncio loop on libuv: about a tenth less CPU
    per gRPC call here), or asyncio's own when uvloop is missing or
    ``$PYCONTAINERD_EVENT_LOOP=asyncio``."""
    if os.environ.get("PYCONTAINERD_EVENT_LOOP", "uvloop").lower() != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop


def main(cfg: Config, registry: Registry) -> None:
    """:func:`run` on the loop of :func:`event_loop_factory`, until a signal stops it.
    Raises what :func:`run` raises."""
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(run(cfg, registry))


async def run(cfg: Config, registry: Registry) -> None:
    """Run the daemon until SIGTERM or SIGINT.

    Raises:
        FailedPrecondition: root locked by another daemon, socket in use, a required plugin
            failed, or a plugin dependency cycle.
        InvalidArgument: bad listener configuration, or a ``--root``/``--state`` that cannot
            be a directory.
    """
    root, state = Path(cfg.root).absolute(), Path(cfg.state).absolute()
    lock = _lock_directory(root, "--root")
    try:
        state_lock = _lock_directory(state, "--state")
    except (FailedPrecondition, InvalidArgument):
        lock.release()
        raise
    plugins = None
    server = None
    ops = None
    try:
        loop = asyncio.get_running_loop()
        # Blocking work (LMDB commits with their fsync, bundle and snapshot directories) runs
        # in worker threads; LMDB writers queue on its write lock, so give the rest room.
        loop.set_default_executor(ThreadPoolExecutor(max_workers=BLOCKING_WORKERS,
                                                     thread_name_prefix="pycontainerd-blocking"))
        unknown_required = dict(registry.unknown(cfg.required_plugins))
        for setting in ("disabled_plugins", "required_plugins"):
            for name, close in registry.unknown(getattr(cfg, setting)):
                log.warning(f"unknown plugin in {setting}", plugin=name, did_you_mean=close)
        order = registry.graph(cfg.disabled_plugins)
        plugins = await initialize(order, cfg, cfg.plugins, root, state)
        for uri in cfg.required_plugins:
            plugin = plugins.by_uri.get(uri)
            if plugin is None or not plugin.ok:
                if uri in unknown_required:
                    close = unknown_required[uri]
                    reason = "no such plugin" + (f" (did you mean {close}?)" if close else "")
                else:
                    reason = "disabled" if plugin is None else str(plugin.error)
                raise FailedPrecondition(f"required plugin {uri} did not load: {reason}")

        server = Server(cfg.grpc, plugins)
        await server.start()
        # [metrics]/[debug] endpoints, SIGUSR1, sd_notify (.operations)
        ops = Operations(cfg, plugins, server.service_names)
        await ops.start()

        # Everything made so far lives as long as the daemon: move it out of the cyclic
        # collector's sight, so that a full collection no longer scans (and stalls the loop
        # for) the ~50,000 objects of the imports and plugins. Then collect the young
        # generation less often: with the default (700) a collection runs every few calls
        # and promotes the objects of calls in flight, which the older generations then
        # scan again; garbage here is almost all freed by reference counting anyway.
        gc.collect()
        gc.freeze()
        gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])

        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        _log_booted(plugins, root, state)
        await stop.wait()
        log.info("stopping: waiting for in-flight calls", grace_seconds=SHUTDOWN_GRACE)
    finally:
        if server is not None:
            await server.stop(SHUTDOWN_GRACE)
        if ops is not None:
            await ops.stop()
        if plugins is not None:
            await close_all(plugins)
        state_lock.release()
        lock.release()
    log.info("stopped")
