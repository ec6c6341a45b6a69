"""The Python client library for pycontainerd — and for any containerd (same wire API).

Async first::

    from pycontainerd.client import AsyncClient, cio, with_process_args

    async with AsyncClient("/run/pycontainerd/pycontainerd.sock", namespace="default") as c:
        image = await c.pull("127.0.0.1:5000/library/busybox:latest", plain_http=True)
        container = await c.new_container("hello", image, with_process_args("echo", "hi"))
        task = await container.new_task(stdio=cio.capture())
        await task.start()
        print((await task.wait()).code, task.io.stdout_bytes)
        await task.delete()
        await container.delete()

and the same surface without ``await``, for scripts: :class:`Client` (generated from the
async code by ``python -m pycontainerd.client._unasync``; it runs an ``AsyncClient`` on a
private event-loop thread)::

    with Client("/run/pycontainerd/pycontainerd.sock") as c:
        for image in c.list_images():
            print(image.name, image.size())

Errors are the typed exceptions of :mod:`pycontainerd.errdefs` (``NotFound``,
``AlreadyExists``, ``FailedPrecondition``, …) mapped from gRPC status codes. Results are
dataclasses. Spec options (``with_*``) come from :mod:`pycontainerd.oci.opts` and compose:
later ones win. See ``docs/client.md`` for a tour.

Importing this package loads nothing but itself: each name is imported from its module on
first use (PEP 562), so a program that needs one store or the connection (``pyctr
version``) does not pay for the rest (spec options, the synchronous wrapper, archives).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

_FROM = {
    "..errdefs": (
        "AlreadyExists", "ContainerdError", "FailedPrecondition", "InvalidArgument", "NotFound",
        "Unavailable",
    ),
    "..events.exchange": ("Envelope",),
    "..oci.opts": (
        "compose", "with_added_capabilities", "with_annotations", "with_capabilities",
        "with_cgroup", "with_cpu_shares", "with_cpus", "with_cpuset_cpus", "with_default_path_env",
        "with_devices", "with_dropped_capabilities", "with_env", "with_host_namespace",
        "with_hostname", "with_image_config", "with_linux_namespace", "with_memory_limit",
        "with_mounts", "with_namespaced_cgroup", "with_no_new_privileges", "with_pids_limit",
        "with_privileged", "with_process_args", "with_process_cwd", "with_readonly_rootfs",
        "with_rlimits", "with_seccomp", "with_sysctls", "with_tty", "with_tty_size", "with_uid_gid",
        "with_user",
    ),
    "._sync": ("Client", "Container", "ContentStore", "Image", "Process", "Snapshotter", "Task"),
    ".client": ("DEFAULT_ADDRESS", "AsyncClient", "PluginInfo", "ServerInfo", "Version"),
    ".connection": ("DaemonUnreachable", "TLSConfig"),
    ".containers": ("AsyncContainer",),
    ".content": ("AsyncContentStore", "ContentInfo", "IngestStatus"),
    ".images": ("AsyncImage", "CheckResult"),
    ".snapshots": ("AsyncSnapshotter", "SnapshotInfo", "Usage"),
    ".tasks": (
        "AsyncProcess", "AsyncTask", "ExitStatus", "ProcessInfo", "ProcessStatus", "TaskMetrics",
    ),
}
"""Module (relative to this package) → the public names it gives."""

if TYPE_CHECKING:
    from . import cio
    from ..errdefs import AlreadyExists, ContainerdError, FailedPrecondition, InvalidArgument, NotFound, Unavailable
    from ..events.exchange import Envelope
    from ..oci.opts import (  # noqa: F401
        compose, with_added_capabilities, with_annotations, with_capabilities, with_cgroup,
        with_cpu_shares, with_cpus, with_cpuset_cpus, with_default_path_env, with_devices,
        with_dropped_capabilities, with_env, with_host_namespace, with_hostname, with_image_config,
        with_linux_namespace, with_memory_limit, with_mounts, with_namespaced_cgroup,
        with_no_new_privileges, with_pids_limit, with_privileged, with_process_args,
        with_process_cwd, with_readonly_rootfs, with_rlimits, with_seccomp, with_sysctls, with_tty,
        with_tty_size, with_uid_gid, with_user,
    )
    from ._sync import Client, Container, ContentStore, Image, Process, Snapshotter, Task
    from .client import DEFAULT_ADDRESS, AsyncClient, PluginInfo, ServerInfo, Version
    from .connection import DaemonUnreachable, TLSConfig
    from .containers import AsyncContainer
    from .content import AsyncContentStore, ContentInfo, IngestStatus
    from .images import AsyncImage, CheckResult
    from .snapshots import AsyncSnapshotter, SnapshotInfo, Usage
    from .tasks import AsyncProcess, AsyncTask, ExitStatus, ProcessInfo, ProcessStatus, TaskMetrics


__getattr__, __dir__ = lazy_exports(__name__, _FROM, submodules=("cio",))

__all__ = [
    "DEFAULT_ADDRESS",
    "AlreadyExists",
    "AsyncClient",
    "AsyncContainer",
    "AsyncContentStore",
    "AsyncImage",
    "AsyncProcess",
    "AsyncSnapshotter",
    "AsyncTask",
    "CheckResult",
    "Client",
    "Container",
    "DaemonUnreachable",
    "ContainerdError",
    "ContentInfo",
    "ContentStore",
    "Envelope",
    "ExitStatus",
    "FailedPrecondition",
    "Image",
    "IngestStatus",
    "InvalidArgument",
    "NotFound",
    "PluginInfo",
    "Process",
    "ProcessInfo",
    "ProcessStatus",
    "ServerInfo",
    "SnapshotInfo",
    "Snapshotter",
    "TLSConfig",
    "Task",
    "TaskMetrics",
    "Unavailable",
    "Usage",
    "Version",
    "cio",
    "compose",
    "with_added_capabilities",
    "with_annotations",
    "with_capabilities",
    "with_cgroup",
    "with_cpu_shares",
    "with_cpus",
    "with_cpuset_cpus",
    "with_default_path_env",
    "with_devices",
    "with_dropped_capabilities",
    "with_env",
    "with_host_namespace",
    "with_hostname",
    "with_image_config",
    "with_linux_namespace",
    "with_memory_limit",
    "with_mounts",
    "with_namespaced_cgroup",
    "with_no_new_privileges",
    "with_pids_limit",
    "with_privileged",
    "with_process_args",
    "with_process_cwd",
    "with_readonly_rootfs",
    "with_rlimits",
    "with_seccomp",
    "with_sysctls",
    "with_tty",
    "with_tty_size",
    "with_uid_gid",
    "with_user",
]
