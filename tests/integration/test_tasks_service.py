"""Tasks service errors over the wire, with real runc: a spec runc rejects carries runc's
own words; a missing container is NOT_FOUND; nothing is left behind."""

from __future__ import annotations

import json
import os

import pytest

from pycontainerd.api.services.tasks.v1 import tasks_pb2, tasks_pb2_grpc
from pycontainerd.client import AsyncClient
from pycontainerd.images.pull import pull
from pycontainerd.client.snapshots import SnapshotClient
from pycontainerd.errdefs import NotFound
from pycontainerd.metadata.containers import Container, Runtime
from pycontainerd.oci import default_spec
from pycontainerd.wire.convert import mount_to_pb
from pycontainerd.typeurl import OCI_SPEC_URL, AnyValue

pytestmark = [pytest.mark.integration, pytest.mark.root]


async def test_runc_rejection_is_reported_with_runc_words(daemon, busybox_image):
    async with AsyncClient(daemon.address) as c:
        image = await pull(c, busybox_image.oci.ref, plain_http=True)
        snaps = SnapshotClient(c.conn)
        top = (await snaps.list())[0].name
        mounts = await snaps.prepare("bad-spec", top)
        spec = default_spec("default", "bad-spec")
        spec["process"]["args"] = []  # runc: "args must not be empty"
        await c.create_container(Container(
            "bad-spec", Runtime("io.containerd.runc.v2"), AnyValue(OCI_SPEC_URL, json.dumps(spec).encode()),
            image=image.name, snapshotter="overlayfs", snapshot_key="bad-spec"))
        tasks = tasks_pb2_grpc.TasksStub(c.conn.channel)
        import grpc

        with pytest.raises(grpc.RpcError) as err:
            await tasks.Create(tasks_pb2.CreateTaskRequest(container_id="bad-spec",
                                                           rootfs=[mount_to_pb(m) for m in mounts]),
                               metadata=c.md())
        assert "args must not be empty" in err.value.details(), err.value.details()
        bundles = daemon.state / "io.containerd.runtime.v2.task" / "default"
        assert not bundles.exists() or os.listdir(bundles) == []
        with pytest.raises(grpc.RpcError) as err:
            await tasks.Create(tasks_pb2.CreateTaskRequest(container_id="ghost"), metadata=c.md())
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.RpcError) as err:
            await tasks.Checkpoint(tasks_pb2.CheckpointTaskRequest(container_id="bad-spec"), metadata=c.md())
        assert err.value.code() in (grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.NOT_FOUND)
        await c.delete_container("bad-spec")
        await snaps.remove("bad-spec")
        with pytest.raises(NotFound):
            await c.get_container("bad-spec")
