"""What the client's parts use of the client: :class:`ClientCore`, below all of them.

:class:`~.client.AsyncClient` composes the parts — containers, tasks, images, image
archives, pull and unpack — and each part calls back into a few of the client's methods
(a container reads its record, a task its container's spec, an unpack takes a lease…).
They name the client by this interface, not by ``AsyncClient``, so imports run one way
only: ``client`` → ``containers`` → ``tasks`` → here, never back up. ``AsyncClient``
satisfies it structurally (``tests/unit/test_client_protocols.py`` keeps the two in step).
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from typing import Protocol

from ..descriptor import Descriptor
from ..records.containers import Container
from ..records.images import Image
from ..records.leases import Lease
from .connection import Connection
from .content import AsyncContentStore
from .snapshots import DEFAULT_SNAPSHOTTER, AsyncSnapshotter


class ImageRef(Protocol):
    """An image as the parts read it back from the client: a name and a target (an image
    record, or the client's ``AsyncImage``)."""

    @property
    def name(self) -> str: ...

    @property
    def target(self) -> Descriptor: ...


class ClientCore(Protocol):
    """The connection, the stores and the record calls the client's parts use."""

    conn: Connection
    """The gRPC channel with the namespace (and lease) every call sends."""

    content: AsyncContentStore

    def snapshotter(self, name: str = DEFAULT_SNAPSHOTTER) -> AsyncSnapshotter: ...

    def lease(self, expire: timedelta = ...) -> AbstractAsyncContextManager[Lease]: ...

    async def get_container(self, cid: str) -> Container: ...

    async def update_container(self, container: Container, *paths: str) -> Container: ...

    async def delete_container(self, cid: str) -> None: ...

    async def create_image(self, image: Image) -> ImageRef: ...

    async def update_image(self, image: Image, *paths: str) -> ImageRef: ...
