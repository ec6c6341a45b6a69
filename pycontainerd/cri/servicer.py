"""``runtime.v1.RuntimeService`` and ``runtime.v1.ImageService`` over gRPC: one line per
call into :mod:`pycontainerd.cri.handlers`, once the service's recovery (started at plugin
init) is done. Errors are :mod:`pycontainerd.errdefs` classes,
mapped to status codes by the daemon's interceptor. Exec, Attach and PortForward return URLs
on the streaming server (:mod:`pycontainerd.cri.streaming`), which the plugin starts with
the service; CheckpointContainer is not supported: UNIMPLEMENTED.
"""

from __future__ import annotations

import functools
import inspect

from ..api.cri.runtime.v1 import api_pb2_grpc
from ..errdefs import NotImplementedYet
from ..log import get_logger
from . import handlers
from .service import CRIService
from .streaming.server import StreamServer

log = get_logger("cri")


def _after_recovery(cls):
    """Every RPC method of servicer ``cls`` first waits for the service's recovery (started
    at plugin init, in the background, so that the daemon serves meanwhile)."""
    for name, fn in list(vars(cls).items()):
        if not name[:1].isupper():
            continue
        if inspect.isasyncgenfunction(fn):
            @functools.wraps(fn)
            async def stream(self, request, context, _fn=fn):
                await self.svc.recovered()
                async for item in _fn(self, request, context):
                    yield item
            setattr(cls, name, stream)
        elif inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def unary(self, request, context, _fn=fn):
                await self.svc.recovered()
                return await _fn(self, request, context)
            setattr(cls, name, unary)
    return cls


@_after_recovery
class RuntimeServicer(api_pb2_grpc.RuntimeServiceServicer):
    def __init__(self, svc: CRIService) -> None:
        self.svc = svc

    async def Version(self, request, context):
        return await handlers.version.version(self.svc, request)

    async def RunPodSandbox(self, request, context):
        return await handlers.sandbox_run.run_pod_sandbox(self.svc, request)

    async def StopPodSandbox(self, request, context):
        return await handlers.sandbox_stop.stop_pod_sandbox(self.svc, request)

    async def RemovePodSandbox(self, request, context):
        return await handlers.sandbox_remove.remove_pod_sandbox(self.svc, request)

    async def PodSandboxStatus(self, request, context):
        return await handlers.sandbox_status.pod_sandbox_status(self.svc, request)

    async def ListPodSandbox(self, request, context):
        return await handlers.sandbox_list.list_pod_sandbox(self.svc, request)

    async def StreamPodSandboxes(self, request, context):
        async for item in handlers.sandbox_list.stream_pod_sandboxes(self.svc, request):
            yield item

    async def CreateContainer(self, request, context):
        return await handlers.container_create.create_container(self.svc, request)

    async def StartContainer(self, request, context):
        return await handlers.container_start.start_container(self.svc, request)

    async def StopContainer(self, request, context):
        return await handlers.container_stop.stop_container_rpc(self.svc, request)

    async def RemoveContainer(self, request, context):
        return await handlers.container_remove.remove_container(self.svc, request)

    async def ListContainers(self, request, context):
        return await handlers.container_list.list_containers(self.svc, request)

    async def StreamContainers(self, request, context):
        async for item in handlers.container_list.stream_containers(self.svc, request):
            yield item

    async def ContainerStatus(self, request, context):
        return await handlers.container_status.container_status(self.svc, request)

    async def UpdateContainerResources(self, request, context):
        return await handlers.container_update.update_container_resources(self.svc, request)

    async def ReopenContainerLog(self, request, context):
        return await handlers.container_log_reopen.reopen_container_log(self.svc, request)

    async def ExecSync(self, request, context):
        return await handlers.container_execsync.exec_sync(self.svc, request)

    async def Exec(self, request, context):
        return await handlers.container_exec.exec_rpc(self.svc, request)

    async def Attach(self, request, context):
        return await handlers.container_attach.attach(self.svc, request)

    async def PortForward(self, request, context):
        return await handlers.sandbox_portforward.port_forward(self.svc, request)

    async def ContainerStats(self, request, context):
        return await handlers.container_stats.container_stats(self.svc, request)

    async def ListContainerStats(self, request, context):
        return await handlers.container_stats.list_container_stats(self.svc, request)

    async def StreamContainerStats(self, request, context):
        async for item in handlers.container_stats.stream_container_stats(self.svc, request):
            yield item

    async def PodSandboxStats(self, request, context):
        return await handlers.sandbox_stats.pod_sandbox_stats(self.svc, request)

    async def ListPodSandboxStats(self, request, context):
        return await handlers.sandbox_stats.list_pod_sandbox_stats(self.svc, request)

    async def StreamPodSandboxStats(self, request, context):
        async for item in handlers.sandbox_stats.stream_pod_sandbox_stats(self.svc, request):
            yield item

    async def UpdateRuntimeConfig(self, request, context):
        return await handlers.runtime_config.update_runtime_config(self.svc, request)

    async def Status(self, request, context):
        return await handlers.status.status(self.svc, request)

    async def CheckpointContainer(self, request, context):
        raise NotImplementedYet("CheckpointContainer")

    async def GetContainerEvents(self, request, context):
        async for item in handlers.container_events.get_container_events(self.svc, request):
            yield item

    async def ListMetricDescriptors(self, request, context):
        return await handlers.sandbox_stats.list_metric_descriptors(self.svc, request)

    async def ListPodSandboxMetrics(self, request, context):
        return await handlers.sandbox_stats.list_pod_sandbox_metrics(self.svc, request)

    async def StreamPodSandboxMetrics(self, request, context):
        async for item in handlers.sandbox_stats.stream_pod_sandbox_metrics(self.svc, request):
            yield item

    async def RuntimeConfig(self, request, context):
        return await handlers.runtime_config.runtime_config(self.svc, request)

    async def UpdatePodSandboxResources(self, request, context):
        return await handlers.runtime_config.update_pod_sandbox_resources(self.svc, request)


@_after_recovery
class ImageServicer(api_pb2_grpc.ImageServiceServicer):
    def __init__(self, svc: CRIService) -> None:
        self.svc = svc

    async def ListImages(self, request, context):
        return await handlers.image_list.list_images(self.svc, request)

    async def StreamImages(self, request, context):
        async for item in handlers.image_list.stream_images(self.svc, request):
            yield item

    async def ImageStatus(self, request, context):
        return await handlers.image_status.image_status(self.svc, request)

    async def PullImage(self, request, context):
        return await handlers.image_pull.pull_image(self.svc, request)

    async def RemoveImage(self, request, context):
        return await handlers.image_remove.remove_image(self.svc, request)

    async def ImageFsInfo(self, request, context):
        return await handlers.image_fsinfo.image_fs_info(self.svc, request)


class CRIServer:
    """The ``io.containerd.grpc.v1.cri`` plugin's instance: both services on the daemon's
    server, and the streaming server behind Exec/Attach/PortForward URLs."""

    service_names = ("runtime.v1.RuntimeService", "runtime.v1.ImageService")

    def __init__(self, service: CRIService) -> None:
        self.service = service
        self.runtime = RuntimeServicer(service)
        self.images = ImageServicer(service)
        self.streaming = StreamServer(service, service.config)
        service.streaming = self.streaming

    def add_to_server(self, server) -> None:
        api_pb2_grpc.add_RuntimeServiceServicer_to_server(self.runtime, server)
        api_pb2_grpc.add_ImageServiceServicer_to_server(self.images, server)
        self.service.spawn(self._start_streaming())

    async def _start_streaming(self) -> None:
        try:
            await self.streaming.start()
        except Exception as exc:  # Exec/Attach/PortForward retry and report it
            log.error("cri streaming server failed to start", error=str(exc))

    def shutdown(self) -> None:
        self.service.shutdown()

    async def close(self) -> None:
        await self.streaming.close()
        await self.service.close()
