"""Network namespaces for pod sandboxes, created, pinned and inspected with pyroute2.

A namespace is created on a short-lived thread of its own: the thread ``unshare``\\ s its
network namespace and pyroute2 bind-mounts ``/proc/<pid>/task/<tid>/ns/net`` at
``/var/run/netns/cni-<uuid>`` (``pyroute2.netns.attach``, which also makes the directory a
shared mount point, as iproute2 does); the thread then ends, so no other part of the daemon
ever runs in the new namespace and nothing is forked from a process that runs gRPC threads.
The pin keeps the namespace alive until :func:`remove` unmounts and deletes it.

Reading a namespace (interfaces, addresses, counters) happens the same way: a thread
``setns``\\ es into it, opens a netlink socket with pyroute2 and reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from ..errdefs import FailedPrecondition

NETNS_DIR = "/var/run/netns"
CLONE_NEWNET = 0x40000000
T = TypeVar("T")

_libc = ctypes.CDLL(None, use_errno=True)


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _on_thread(fn: Callable[[], T]) -> T:
    """Run ``fn`` on a fresh OS thread (whose namespaces ``fn`` may change) and return its result."""
    result: list = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            result.append(fn())
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller
            error.append(exc)

    t = threading.Thread(target=run, name="pycontainerd-netns", daemon=True)
    t.start()
    t.join()
    if error:
        raise error[0]
    return result[0]


def create() -> str:
    """Create a new network namespace pinned at ``/var/run/netns/cni-<uuid>``; returns the path.

    Raises :class:`OSError` when unsharing or mounting fails (nothing is left behind).
    """
    from pyroute2 import netns as pr_netns

    name = f"cni-{uuid.uuid4()}"
    path = os.path.join(NETNS_DIR, name)

    def make() -> str:
        _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
        pr_netns.attach(name, f"{os.getpid()}/task/{threading.get_native_id()}")
        return path

    try:
        return _on_thread(make)
    except BaseException:
        with contextlib.suppress(OSError):
            remove(path)
        raise


async def create_async() -> str:
    return await asyncio.to_thread(create)


def pin(pid: int) -> str:
    """Pin the network namespace of process ``pid`` (one the runtime made, owned by the pod's
    user namespace) at ``/var/run/netns/cni-<uuid>``; returns the path. Raises
    :class:`OSError` (nothing is left behind)."""
    from pyroute2 import netns as pr_netns

    name = f"cni-{uuid.uuid4()}"
    path = os.path.join(NETNS_DIR, name)
    try:
        pr_netns.attach(name, pid)
    except BaseException:
        with contextlib.suppress(OSError):
            remove(path)
        raise
    return path


async def pin_async(pid: int) -> str:
    return await asyncio.to_thread(pin, pid)


def remove(path: str) -> None:
    """Unmount and delete the pin at ``path``; a missing pin is fine (idempotent)."""
    if not path:
        return
    if _libc.umount2(path.encode(), 2) != 0:  # MNT_DETACH
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOENT):
            raise OSError(err, f"unmount netns {path}: {os.strerror(err)}")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def exists(path: str) -> bool:
    """True when ``path`` is a pinned network namespace (a mount point)."""
    if not path or not os.path.exists(path):
        return False
    from ..mount import is_mountpoint

    return is_mountpoint(path)


def run_in(path: str, fn: Callable[[], T]) -> T:
    """Run ``fn`` on a thread that has joined the network namespace at ``path``.

    Raises :class:`FailedPrecondition` when the namespace is gone.
    """
    def enter() -> T:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError as exc:
            raise FailedPrecondition(f"network namespace {path} does not exist") from exc
        try:
            _check(_libc.setns(fd, CLONE_NEWNET), f"setns({path})")
        finally:
            os.close(fd)
        return fn()

    return _on_thread(enter)


@dataclass(frozen=True)
class Interface:
    name: str
    index: int
    up: bool
    addresses: tuple[str, ...]        # "10.1.0.5/24"
    rx_bytes: int
    rx_errors: int
    tx_bytes: int
    tx_errors: int
    rx_packets: int = 0
    rx_dropped: int = 0
    tx_packets: int = 0
    tx_dropped: int = 0


def interfaces(path: str) -> list[Interface]:
    """The interfaces of the namespace at ``path`` with their addresses and counters."""
    def read() -> list[Interface]:
        from pyroute2 import IPRoute

        with IPRoute() as ipr:
            addrs: dict[int, list[str]] = {}
            for a in ipr.get_addr():
                addrs.setdefault(a["index"], []).append(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}")
            out = []
            for link in ipr.get_links():
                stats = link.get_attr("IFLA_STATS64") or link.get_attr("IFLA_STATS") or {}
                out.append(Interface(
                    name=link.get_attr("IFLA_IFNAME"), index=link["index"], up=bool(link["flags"] & 1),
                    addresses=tuple(addrs.get(link["index"], ())),
                    rx_bytes=int(stats.get("rx_bytes", 0)), rx_errors=int(stats.get("rx_errors", 0)),
                    tx_bytes=int(stats.get("tx_bytes", 0)), tx_errors=int(stats.get("tx_errors", 0)),
                    rx_packets=int(stats.get("rx_packets", 0)), rx_dropped=int(stats.get("rx_dropped", 0)),
                    tx_packets=int(stats.get("tx_packets", 0)), tx_dropped=int(stats.get("tx_dropped", 0))))
            return out

    return run_in(path, read)


async def interfaces_async(path: str) -> list[Interface]:
    return await asyncio.to_thread(interfaces, path)
