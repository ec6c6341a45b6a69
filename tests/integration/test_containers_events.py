"""Containers and Events services over the wire (issue 5): CRUD with containerd's
validation and codes, ListStream, filters, and the events they publish."""

from __future__ import annotations

import subprocess
import threading
import time

import grpc
import pytest
from google.protobuf import any_pb2, field_mask_pb2

from pycontainerd.api.events import container_pb2 as ev
from pycontainerd.api.services.containers.v1 import containers_pb2 as pb, containers_pb2_grpc
from pycontainerd.api.services.events.v1 import events_pb2, events_pb2_grpc
from pycontainerd.typeurl import OCI_SPEC_URL

pytestmark = pytest.mark.integration
NS = [("containerd-namespace", "test")]


def spec():
    return any_pb2.Any(type_url=OCI_SPEC_URL, value=b'{"ociVersion":"1.0.2"}')


def container(cid, **kw):
    return pb.Container(id=cid, runtime=pb.Container.Runtime(name="io.containerd.runc.v2"), spec=spec(), **kw)


def test_crud_validation_and_codes(daemon):
    with daemon.channel() as ch:
        stub = containers_pb2_grpc.ContainersStub(ch)
        created = stub.Create(pb.CreateContainerRequest(container=container(
            "web", image="docker.io/library/busybox:latest", labels={"app": "web"},
            snapshotter="overlayfs", snapshot_key="web-snap")), metadata=NS).container
        assert created.created_at.seconds > 0 and created.spec.type_url == OCI_SPEC_URL
        got = stub.Get(pb.GetContainerRequest(id="web"), metadata=NS).container
        assert got.image == "docker.io/library/busybox:latest" and got.labels == {"app": "web"}
        stub.Create(pb.CreateContainerRequest(container=container("db", labels={"app": "db"})), metadata=NS)
        listed = stub.List(pb.ListContainersRequest(filters=["labels.app==db"]), metadata=NS).containers
        assert [c.id for c in listed] == ["db"]
        streamed = [m.container.id for m in stub.ListStream(pb.ListContainersRequest(), metadata=NS)]
        assert streamed == ["db", "web"]
        upd = stub.Update(pb.UpdateContainerRequest(
            container=pb.Container(id="web", labels={"tier": "front"}),
            update_mask=field_mask_pb2.FieldMask(paths=["labels.tier"])), metadata=NS).container
        assert upd.labels == {"app": "web", "tier": "front"} and upd.image == got.image

        def code(call, *args):
            with pytest.raises(grpc.RpcError) as err:
                call(*args, metadata=NS)
            return err.value.code(), err.value.details()

        assert code(stub.Create, pb.CreateContainerRequest(container=container("web")))[0] == grpc.StatusCode.ALREADY_EXISTS
        c, msg = code(stub.Create, pb.CreateContainerRequest(container=pb.Container(id="x", spec=spec())))
        assert c == grpc.StatusCode.INVALID_ARGUMENT and "Runtime.Name must be set" in msg
        c, msg = code(stub.Create, pb.CreateContainerRequest(container=container("bad id")))
        assert c == grpc.StatusCode.INVALID_ARGUMENT and "container.ID" in msg
        c, msg = code(stub.Create, pb.CreateContainerRequest(container=container("y", snapshot_key="k")))
        assert c == grpc.StatusCode.INVALID_ARGUMENT and "Snapshotter must be set" in msg
        c, msg = code(stub.Update, pb.UpdateContainerRequest(
            container=container("web", snapshotter="native")))
        assert c == grpc.StatusCode.INVALID_ARGUMENT and "immutable" in msg
        c, msg = code(stub.Update, pb.UpdateContainerRequest(
            container=pb.Container(id="web"), update_mask=field_mask_pb2.FieldMask(paths=["runtime"])))
        assert c == grpc.StatusCode.INVALID_ARGUMENT and "cannot update" in msg
        assert code(stub.Get, pb.GetContainerRequest(id="nope"))[0] == grpc.StatusCode.NOT_FOUND
        assert code(stub.List, pb.ListContainersRequest(filters=["id=="]))[0] == grpc.StatusCode.INVALID_ARGUMENT
        # another namespace sees nothing
        assert not stub.List(pb.ListContainersRequest(), metadata=[("containerd-namespace", "other")]).containers
        # no namespace at all: containerd's FAILED_PRECONDITION "namespace is required"
        with pytest.raises(grpc.RpcError) as err:
            stub.List(pb.ListContainersRequest())
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        stub.Delete(pb.DeleteContainerRequest(id="web"), metadata=NS)
        assert code(stub.Delete, pb.DeleteContainerRequest(id="web"))[0] == grpc.StatusCode.NOT_FOUND


def test_events_subscribe_filter_and_publish(daemon):
    with daemon.channel() as ch:
        events = events_pb2_grpc.EventsStub(ch)
        got = []
        stream = events.Subscribe(events_pb2.SubscribeRequest(
            filters=['topic~="/containers/"', 'topic=="/custom/thing"']))

        def read():
            for env in stream:
                got.append(env)
                if len(got) == 3:
                    return

        t = threading.Thread(target=read)
        t.start()
        time.sleep(0.5)
        stub = containers_pb2_grpc.ContainersStub(ch)
        stub.Create(pb.CreateContainerRequest(container=container("evt")), metadata=NS)
        stub.Delete(pb.DeleteContainerRequest(id="evt"), metadata=NS)
        custom = any_pb2.Any(type_url="example.com/Thing", value=b"\x01")
        events.Publish(events_pb2.PublishRequest(topic="/custom/thing", event=custom), metadata=NS)
        events.Publish(events_pb2.PublishRequest(topic="/other/thing", event=custom), metadata=NS)
        t.join(10)
        stream.cancel()
        assert [e.topic for e in got] == ["/containers/create", "/containers/delete", "/custom/thing"]
        assert got[0].event.type_url == "containerd.events.ContainerCreate" and got[0].namespace == "test"
        create = ev.ContainerCreate.FromString(got[0].event.value)
        assert create.id == "evt" and create.runtime.name == "io.containerd.runc.v2"
        assert got[2].event == custom
        with pytest.raises(grpc.RpcError) as err:
            events.Publish(events_pb2.PublishRequest(topic="no-slash", event=custom), metadata=NS)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.RpcError) as err:
            list(events.Subscribe(events_pb2.SubscribeRequest(filters=["topic=="])))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_ctr_events_prints_and_filters(ctr_bin, daemon):
    proc = subprocess.Popen([ctr_bin, "-a", daemon.address, "events", "event.name==evt-b"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.7)
        for name in ("evt-a", "evt-b"):
            subprocess.run([ctr_bin, "-a", daemon.address, "namespaces", "create", name], check=True)
        time.sleep(0.7)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    lines = out.strip().splitlines()
    assert len(lines) == 1, out
    assert "/namespaces/create" in lines[0] and '"name":"evt-b"' in lines[0]


def test_sigterm_ends_open_subscriptions_promptly(daemon):
    ch = daemon.channel()
    stream = events_pb2_grpc.EventsStub(ch).Subscribe(events_pb2.SubscribeRequest())
    time.sleep(0.3)
    started = time.monotonic()
    assert daemon.stop() == 0
    assert time.monotonic() - started < 5  # not the 10 s grace: streams were ended
    assert list(stream) == []  # the stream ended cleanly
    ch.close()
