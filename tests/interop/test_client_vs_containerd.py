"""Our client library against a real containerd (Debian's), started by the test: the same
calls behave the same against both daemons."""

from __future__ import annotations

import pytest

from pycontainerd.client import AsyncClient
from pycontainerd.errdefs import AlreadyExists, FailedPrecondition, NotFound

pytestmark = [pytest.mark.interop, pytest.mark.root]


async def exercise(address: str) -> dict:
    async with AsyncClient(address, namespace="interop") as c:
        out = {"version": (await c.version()).version}
        await c.create_namespace("interop-x", {"k": "v"})
        with pytest.raises(AlreadyExists):
            await c.create_namespace("interop-x")
        out["namespaces"] = sorted(n.name for n in await c.list_namespaces())
        async with c.lease() as lease:
            out["lease_listed"] = [x.id for x in await c.list_leases()] == [lease.id]
        out["leases_after"] = await c.list_leases()
        with pytest.raises(NotFound):
            await c.get_image("docker.io/library/nothing:here")
        with pytest.raises(NotFound):
            await c.delete_namespace("never-created")
        # without a lease an unreferenced blob is fair game for GC on both daemons
        async with c.lease():
            digest = await c.content.write("interop-ref", b"hello interop\n")
            out["blob"] = (await c.content.info(digest)).size
            assert await c.content.read_all(digest) == b"hello interop\n"
            with pytest.raises(FailedPrecondition, match="must be empty"):
                await c.delete_namespace("interop")  # holds a blob
            await c.content.delete(digest)
        return out


@pytest.mark.parametrize("which", ["containerd", "pycontainerd"])
async def test_same_behaviour_on_both_daemons(which, request):
    target = request.getfixturevalue("containerd" if which == "containerd" else "daemon")
    out = await exercise(target.address)
    assert out["namespaces"] == ["interop-x"]
    assert out["lease_listed"] and out["leases_after"] == []
    assert out["blob"] == len(b"hello interop\n")
