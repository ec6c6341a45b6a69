"""``containerd.services.images.v1.Images`` over :class:`ImageStore`."""

from __future__ import annotations

from google.protobuf import empty_pb2

from .. import namespaces
from ..api.services.images.v1 import images_pb2 as pb
from ..api.services.images.v1 import images_pb2_grpc
from ..memo import Latest
from ..metadata.images import ImageStore
from ..wire.records.images import image_from_pb, image_to_pb


class ImagesServicer(images_pb2_grpc.ImagesServicer):
    """Thin layer; ``gc`` (optional) is awaited when a Delete asks for ``sync``."""

    service_names = ("containerd.services.images.v1.Images",)

    def __init__(self, store: ImageStore, gc=None) -> None:
        self.store = store
        self.gc = gc
        self._lists: Latest[pb.ListImagesResponse] = Latest(16)
        self._gets: Latest[pb.GetImageResponse] = Latest(256)
        """Answers to List and Get by the database's write generation read before them, as
        :class:`~pycontainerd.services.containers.ContainersServicer` keeps them."""

    def add_to_server(self, server) -> None:
        images_pb2_grpc.add_ImagesServicer_to_server(self, server)

    async def Get(self, request, context):
        return self._gets.get((namespaces.required(), request.name), self.store.db.generation,
                                 lambda: pb.GetImageResponse(image=image_to_pb(self.store.get(request.name))))

    async def List(self, request, context):
        filters = list(request.filters)
        return self._lists.get((namespaces.required(), *filters), self.store.db.generation,
                                 lambda: pb.ListImagesResponse(images=[image_to_pb(i) for i in self.store.list(filters)]))

    async def Create(self, request, context):
        image = await self.store.create(image_from_pb(request.image))
        return pb.CreateImageResponse(image=image_to_pb(image))

    async def Update(self, request, context):
        image = await self.store.update(image_from_pb(request.image), list(request.update_mask.paths))
        return pb.UpdateImageResponse(image=image_to_pb(image))

    async def Delete(self, request, context):
        await self.store.delete(request.name)
        if self.gc is not None:
            if request.sync:
                await self.gc.collect()
            else:
                self.gc.schedule()
        return empty_pb2.Empty()
