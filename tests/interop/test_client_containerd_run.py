"""Our client library runs a container through a REAL containerd (Debian's, started on temp
dirs by the ``containerd`` fixture): pull from the local registry, new_container (rootfs
snapshot + OCI spec from the image config), new_task with client-side fifos, start, wait,
exec, delete — proving the client speaks containerd's API, not just ours."""

from __future__ import annotations

import os

import pytest

from pycontainerd.client import AsyncClient, cio, with_env, with_process_args
from pycontainerd.errdefs import FailedPrecondition, NotFound

pytestmark = [pytest.mark.interop, pytest.mark.root]

NS = "pyclient"


@pytest.fixture
async def client(containerd, tmp_path):
    async with AsyncClient(containerd.address, namespace=NS, fifo_dir=str(tmp_path / "fifo")) as c:
        yield c
        # leave nothing: tasks, containers, images (content goes with GC)
        for container in await c.containers():
            try:
                task = await container.task()
                await task.kill(9)
                await task.wait()
                await task.delete()
            except NotFound:
                pass
            await container.delete()
        for image in await c.list_images():
            await c.delete_image(image.name, sync=True)


async def test_run_a_container_through_real_containerd(client, busybox_image, tmp_path):
    image = await client.pull(busybox_image.oci.ref, plain_http=True)
    assert image.target.digest == busybox_image.oci.digest
    assert await image.is_unpacked()
    container = await client.new_container(
        "hello", image, with_process_args("sh", "-c", 'echo "hello $WHO"; echo oops >&2; exit 3'),
        with_env(["WHO=containerd"]), labels={"test": "interop"})
    info = await container.info()
    assert info.spec.type_url == "types.containerd.io/opencontainers/runtime-spec/1/Spec"
    assert info.snapshot_key == "hello" and info.snapshotter == "overlayfs" and info.labels["test"] == "interop"
    spec = await container.spec()
    assert spec["process"]["args"][:2] == ["sh", "-c"] and "WHO=containerd" in spec["process"]["env"]

    task = await container.new_task(stdio=cio.capture(fifo_dir=str(tmp_path / "fifo")))
    assert task.io.config.stdout.startswith(str(tmp_path / "fifo"))
    pid = await task.start()
    assert pid > 0
    status = await task.wait()
    assert status.code == 3 and status.exited_at > 0
    deleted = await task.delete()
    assert deleted.code == 3
    assert task.io.stdout_bytes == b"hello containerd\n"
    assert task.io.stderr_bytes == b"oops\n"
    assert os.listdir(tmp_path / "fifo") == []  # the client removed its fifos

    await container.delete()
    with pytest.raises(NotFound):
        await client.load_container("hello")
    with pytest.raises(NotFound):
        await client.snapshotter().stat("hello")


async def test_exec_pause_and_errors_through_real_containerd(client, busybox_image, tmp_path):
    image = await client.pull(busybox_image.oci.ref, plain_http=True)
    container = await client.new_container("sleeper", image, with_process_args("sleep", "1000"))
    task = await container.new_task()
    await task.start()
    with pytest.raises(FailedPrecondition):
        await container.delete()  # its task still exists
    proc = await task.exec("e1", ["sh", "-c", "cat; echo done"],
                           stdio=cio.capture(b"from stdin\n", fifo_dir=str(tmp_path / "fifo")))
    await proc.start()
    assert (await proc.wait()).code == 0
    await proc.delete()
    assert proc.io.stdout_bytes == b"from stdin\ndone\n"
    assert [p.pid for p in await task.pids()] == [task.pid]
    await task.pause()
    assert (await task.status()).status == "paused"
    await task.resume()
    metrics = await task.metrics()
    assert metrics.id == "sleeper" and metrics.data is not None
    await task.kill("SIGKILL")
    assert (await task.wait()).code == 137
    await task.delete()
    await container.delete()
