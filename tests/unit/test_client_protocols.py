"""The client's parts name the client by protocols (``client/_protocols.py``,
``containers.ContainerClient``), not by ``AsyncClient``, so their imports run one way
(tests/unit/test_layering.py). No type checker runs in CI, so this checks that
``AsyncClient`` still has every member they use, with the same parameters and the same
sync/async kind."""

from __future__ import annotations

import asyncio
import inspect
import typing

import pytest

from pycontainerd.client import AsyncClient
from pycontainerd.client._protocols import ClientCore, ImageRef
from pycontainerd.client.containers import ContainerClient
from pycontainerd.client.images import AsyncImage
from pycontainerd.descriptor import Descriptor
from pycontainerd.records.images import Image


def _members(protocol: type) -> list[str]:
    return sorted(typing._get_protocol_attrs(protocol))  # what isinstance() checks too


def _params(fn) -> list[tuple[str, inspect._ParameterKind]]:
    return [(p.name, p.kind) for p in inspect.signature(fn).parameters.values()]


@pytest.mark.parametrize("protocol", [ClientCore, ContainerClient])
def test_async_client_has_every_member_the_parts_use(protocol):
    members = _members(protocol)
    assert {"conn", "content", "get_container", "lease"} <= set(members)

    async def instance_attributes() -> set[str]:
        client = AsyncClient("/nonexistent/pycontainerd-test.sock")  # no connection is made
        try:
            return {name for name in members if hasattr(client, name)}
        finally:
            await client.close()

    assert asyncio.run(instance_attributes()) == set(members)
    for name in members:
        declared = getattr(protocol, name, None)
        if not callable(declared):
            continue  # a data attribute (conn, content)
        actual = getattr(AsyncClient, name)
        assert _params(actual) == _params(declared), name
        assert inspect.iscoroutinefunction(actual) == inspect.iscoroutinefunction(declared), name


def test_image_records_and_async_images_are_image_refs():
    target = Descriptor("application/vnd.oci.image.manifest.v1+json", "sha256:" + "0" * 64, 2)
    for image in (Image("docker.io/library/busybox:latest", target),
                  AsyncImage("docker.io/library/busybox:latest", target)):
        assert [getattr(image, m) for m in _members(ImageRef)] == ["docker.io/library/busybox:latest", target]
