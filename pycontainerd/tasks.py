"""The tasks service, core side (containerd ``services/tasks/local.go``): a task is the
running side of a container record.

Create looks the container up in the request's namespace, takes its OCI spec (JSON in the
spec ``Any``) and runtime, and asks the runtime's :class:`~pycontainerd.runtime.task.TaskManager`
for a task with the client's rootfs mounts and stdio; every other call goes to that task's
shim. Events (``/tasks/create``, ``/tasks/start``, ``/tasks/exit``, …) come from the shims
themselves, over ttrpc, as with containerd.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from google.protobuf import any_pb2

from . import filters, namespaces
from .errdefs import FailedPrecondition, NotFound, NotImplementedYet, quote
from .metadata.containers import ContainerStore
from .mount import Mount
from .runtime.task import Exit, ProcessInfo, ProcessState, ShimTask, TaskManager

SUPPORTED_RUNTIMES = ("io.containerd.runc.v2", "io.containerd.runc.v1", "io.containerd.runtime.v1.linux")
"""Runtime names served by our shim (containerd runs runc.v2 for all of them)."""


@dataclass(frozen=True)
class Metric:
    """One task's cgroup metrics: ``id``, nanosecond ``timestamp``, and the cgroup metrics
    ``Any`` (``io.containerd.cgroups.v1.Metrics`` or ``….v2.Metrics``)."""

    id: str
    timestamp_ns: int
    data: any_pb2.Any


class LocalTasks:
    """Tasks of the request's namespace, in-process (containerd's ``local`` tasks service;
    the gRPC :class:`~pycontainerd.services.tasks.TasksServicer` is a thin use of it).

    Args:
        containers: container records (for the spec, runtime and options).
        manager: the runtime v2 task manager.
    """

    def __init__(self, containers: ContainerStore, manager: TaskManager) -> None:
        self.containers = containers
        self.manager = manager

    def task(self, container_id: str) -> ShimTask:
        """The task of ``container_id``. Raises :class:`NotFound` (``task <id> not found``,
        containerd's words; its client adds ``no running task found``)."""
        ns = namespaces.required()
        try:
            return self.manager.get(ns, container_id)
        except NotFound as exc:
            raise NotFound(f"task {container_id} not found") from exc

    async def create(self, container_id: str, rootfs: Sequence[Mount], *, stdin: str = "", stdout: str = "",
                     stderr: str = "", terminal: bool = False, options: any_pb2.Any | None = None,
                     checkpoint: bool = False) -> ShimTask:
        """Create the task (its init process stays ``created`` until :meth:`start`).

        Raises:
            NotFound: no such container.
            AlreadyExists: the container has a task already.
            FailedPrecondition: the container's runtime is not one this daemon serves.
            NotImplementedYet: restoring from a checkpoint.
        """
        ns = namespaces.required()
        if checkpoint:
            raise NotImplementedYet("creating a task from a checkpoint")
        container = self.containers.get(container_id)
        if container.runtime.name not in SUPPORTED_RUNTIMES:
            raise FailedPrecondition(f"runtime {quote(container.runtime.name)} is not supported; "
                                     f"use one of {', '.join(SUPPORTED_RUNTIMES)}")
        if container.spec is None:
            raise FailedPrecondition(f"container {quote(container_id)} has no spec")
        if options is None and container.runtime.options is not None:
            options = any_pb2.Any(type_url=container.runtime.options.type_url, value=container.runtime.options.value)
        return await self.manager.create(ns, container_id, container.spec.value, list(rootfs), stdin=stdin,
                                         stdout=stdout, stderr=stderr, terminal=terminal, runtime_options=options)

    async def delete(self, container_id: str) -> Exit:
        """Delete a stopped (or never started) task. Raises NotFound, FailedPrecondition."""
        return await self.manager.delete_task(namespaces.required(), self.task(container_id).id)

    def list(self) -> list[ShimTask]:
        return self.manager.list(namespaces.required())

    async def states(self, filter_text: str = "") -> list[ProcessState]:
        """State of every task's init in the namespace (``filter``: containerd filter on
        ``id``/``status``... applied to the states)."""
        match = filters.parse_all([filter_text] if filter_text else [])
        out = []
        for task in self.list():
            try:
                state = await task.state()
            except (NotFound, FailedPrecondition):
                continue
            fields = {"id": state.id, "status": state.status, "pid": str(state.pid)}
            if match.match(lambda path: fields.get(path[0]) if len(path) == 1 else None):
                out.append(state)
        return out

    async def metrics(self, filter_texts: Sequence[str]) -> list[Metric]:
        """cgroup metrics of the tasks whose ``id`` or ``namespace`` match the filters."""
        ns = namespaces.required()
        match = filters.parse_all(filter_texts)
        out = []
        for task in self.list():
            fields = {"id": task.id, "namespace": ns}
            if not match.match(lambda path: fields.get(path[0]) if len(path) == 1 else None):
                continue
            out.append(Metric(task.id, time.time_ns(), await task.stats()))
        return out

    async def pids(self, container_id: str) -> list[ProcessInfo]:
        return await self.task(container_id).pids()
