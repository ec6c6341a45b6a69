"""``containerd.services.tasks.v1.Tasks`` over :class:`pycontainerd.tasks.LocalTasks`."""

from __future__ import annotations

from google.protobuf import any_pb2, empty_pb2

from ..api.runtime.runc.options import oci_pb2 as runc_options
from ..api.services.tasks.v1 import tasks_pb2 as pb
from ..api.services.tasks.v1 import tasks_pb2_grpc
from ..api.types import metrics_pb2
from ..api.types.task import task_pb2 as types
from ..errdefs import NotImplementedYet
from ..runtime.task import ProcessState
from ..tasks import LocalTasks
from ..wire.convert import mount_from_pb, timestamp

_STATUS = {"created": types.CREATED, "running": types.RUNNING, "stopped": types.STOPPED,
           "paused": types.PAUSED, "pausing": types.PAUSING}


def process_to_pb(container_id: str, s: ProcessState) -> types.Process:
    return types.Process(
        container_id=container_id, id=s.exec_id or s.id, pid=s.pid, status=_STATUS.get(s.status, types.UNKNOWN),
        stdin=s.stdin, stdout=s.stdout, stderr=s.stderr, terminal=s.terminal, exit_status=s.exit_status,
        exited_at=timestamp(s.exited_at_ns) if s.exited_at_ns else None,
    )


class TasksServicer(tasks_pb2_grpc.TasksServicer):
    service_names = ("containerd.services.tasks.v1.Tasks",)

    def __init__(self, service: LocalTasks) -> None:
        self.service = service

    def add_to_server(self, server) -> None:
        tasks_pb2_grpc.add_TasksServicer_to_server(self, server)

    async def Create(self, request, context):
        task = await self.service.create(
            request.container_id, [mount_from_pb(m) for m in request.rootfs], stdin=request.stdin,
            stdout=request.stdout, stderr=request.stderr, terminal=request.terminal,
            options=request.options if request.HasField("options") else None,
            checkpoint=request.HasField("checkpoint") and bool(request.checkpoint.digest))
        return pb.CreateTaskResponse(container_id=request.container_id, pid=task.pid)

    async def Start(self, request, context):
        pid = await self.service.task(request.container_id).start(request.exec_id)
        return pb.StartResponse(pid=pid)

    async def Delete(self, request, context):
        exit = await self.service.delete(request.container_id)
        return pb.DeleteResponse(id=request.container_id, pid=exit.pid, exit_status=exit.exit_status,
                                 exited_at=timestamp(exit.exited_at_ns))

    async def DeleteProcess(self, request, context):
        exit = await self.service.task(request.container_id).delete(request.exec_id)
        return pb.DeleteResponse(id=request.exec_id, pid=exit.pid, exit_status=exit.exit_status,
                                 exited_at=timestamp(exit.exited_at_ns))

    async def Get(self, request, context):
        state = await self.service.task(request.container_id).state(request.exec_id)
        return pb.GetResponse(process=process_to_pb(request.container_id, state))

    async def List(self, request, context):
        states = await self.service.states(request.filter)
        return pb.ListTasksResponse(tasks=[process_to_pb(s.id, s) for s in states])

    async def Kill(self, request, context):
        await self.service.task(request.container_id).kill(request.signal, request.all, request.exec_id)
        return empty_pb2.Empty()

    async def Exec(self, request, context):
        await self.service.task(request.container_id).exec(
            request.exec_id, request.spec, stdin=request.stdin, stdout=request.stdout, stderr=request.stderr,
            terminal=request.terminal)
        return empty_pb2.Empty()

    async def ResizePty(self, request, context):
        await self.service.task(request.container_id).resize_pty(request.width, request.height, request.exec_id)
        return empty_pb2.Empty()

    async def CloseIO(self, request, context):
        await self.service.task(request.container_id).close_io(request.exec_id, request.stdin)
        return empty_pb2.Empty()

    async def Pause(self, request, context):
        await self.service.task(request.container_id).pause()
        return empty_pb2.Empty()

    async def Resume(self, request, context):
        await self.service.task(request.container_id).resume()
        return empty_pb2.Empty()

    async def ListPids(self, request, context):
        out = []
        for p in await self.service.pids(request.container_id):
            info = None
            if p.exec_id:
                details = runc_options.ProcessDetails(exec_id=p.exec_id)
                info = any_pb2.Any(type_url=details.DESCRIPTOR.full_name, value=details.SerializeToString())
            out.append(types.ProcessInfo(pid=p.pid, info=info))
        return pb.ListPidsResponse(processes=out)

    async def Checkpoint(self, request, context):
        # the shim answers: the runtime's refusal without CRIU, UNIMPLEMENTED with it
        await self.service.task(request.container_id).checkpoint("")
        raise NotImplementedYet("checkpointing a task")

    async def Update(self, request, context):
        await self.service.task(request.container_id).update(request.resources, dict(request.annotations))
        return empty_pb2.Empty()

    async def Metrics(self, request, context):
        metrics = await self.service.metrics(list(request.filters))
        return pb.MetricsResponse(metrics=[metrics_pb2.Metric(timestamp=timestamp(m.timestamp_ns), id=m.id,
                                                              data=m.data) for m in metrics])

    async def Wait(self, request, context):
        exit = await self.service.task(request.container_id).wait(request.exec_id)
        return pb.WaitResponse(exit_status=exit.exit_status, exited_at=timestamp(exit.exited_at_ns))
