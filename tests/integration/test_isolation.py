"""Namespaces isolate, over the wire (issue 9, "Isolation"): a client in namespace A can
neither read, change, label, delete nor even learn about anything of namespace B — blobs by
digest, B's open ingests, images, containers, snapshots (nor use B's layers as a parent),
leases, tasks — and every refusal is containerd's ``NOT_FOUND``. B's objects are untouched
afterwards. Registry credentials given to a pull never reach the daemon's log (at debug
level), its events or labels.

Socket mode and owner, and TCP only with TLS and client certificates, are covered in
test_daemon_lifecycle.py; the checks here add what a client *without* a certificate or
with one from another CA meets.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import grpc
import pytest
from google.protobuf import any_pb2, empty_pb2, field_mask_pb2

from pycontainerd.api.services.containers.v1 import containers_pb2 as cpb
from pycontainerd.api.services.containers.v1 import containers_pb2_grpc
from pycontainerd.api.services.content.v1 import content_pb2 as pb
from pycontainerd.api.services.content.v1 import content_pb2_grpc
from pycontainerd.api.services.events.v1 import events_pb2, events_pb2_grpc
from pycontainerd.api.services.images.v1 import images_pb2 as ipb
from pycontainerd.api.services.images.v1 import images_pb2_grpc
from pycontainerd.api.services.leases.v1 import leases_pb2 as lpb
from pycontainerd.api.services.leases.v1 import leases_pb2_grpc
from pycontainerd.api.services.snapshots.v1 import snapshots_pb2 as spb
from pycontainerd.api.services.snapshots.v1 import snapshots_pb2_grpc
from pycontainerd.api.services.tasks.v1 import tasks_pb2 as tpb
from pycontainerd.api.services.tasks.v1 import tasks_pb2_grpc
from pycontainerd.api.services.version.v1 import version_pb2_grpc
from pycontainerd.api.types import descriptor_pb2
from pycontainerd.api.types.task import task_pb2 as task_types

pytestmark = pytest.mark.integration

A, B = "team-a", "team-b"
SNAPSHOTTER = "overlayfs"


def md(ns: str):
    return [("containerd-namespace", ns)]


def dgst(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def not_found(call, *args, **kw) -> str:
    """Run ``call`` (a stub method or a function making one); it must fail NOT_FOUND."""
    with pytest.raises(grpc.RpcError) as err:
        result = call(*args, **kw)
        if hasattr(result, "__iter__") and not isinstance(result, (bytes, str)):
            list(result)  # a server stream fails on its first read
    assert err.value.code() == grpc.StatusCode.NOT_FOUND, (err.value.code(), err.value.details())
    return err.value.details()


def write(stub, ns: str, ref: str, data: bytes, *, commit: bool, labels=None):
    reqs = [pb.WriteContentRequest(action=pb.STAT, ref=ref, total=len(data), expected=dgst(data)),
            pb.WriteContentRequest(action=pb.WRITE, offset=0, data=data)]
    if commit:
        reqs.append(pb.WriteContentRequest(action=pb.COMMIT, offset=len(data), total=len(data),
                                           expected=dgst(data), labels=labels or {}))
    return list(stub.Write(iter(reqs), metadata=md(ns), timeout=30))


def test_namespace_a_cannot_touch_namespace_b(daemon):
    blob = b'{"secret": "of team b"}\n'
    partial = b"x" * 42
    with daemon.channel() as ch:
        content = content_pb2_grpc.ContentStub(ch)
        images = images_pb2_grpc.ImagesStub(ch)
        containers = containers_pb2_grpc.ContainersStub(ch)
        snapshots = snapshots_pb2_grpc.SnapshotsStub(ch)
        leases = leases_pb2_grpc.LeasesStub(ch)

        # --- B's objects
        write(content, B, "b-blob", blob, commit=True, labels={"owner": "b"})
        write(content, B, "b-ingest", partial + b"y" * 58, commit=False)  # open, 100 bytes expected
        target = descriptor_pb2.Descriptor(media_type="application/vnd.oci.image.manifest.v1+json",
                                           digest=dgst(blob), size=len(blob))
        images.Create(ipb.CreateImageRequest(image=ipb.Image(name="example.com/b/app:1", target=target,
                                                             labels={"owner": "b"})), metadata=md(B))
        spec = any_pb2.Any(type_url="types.containerd.io/opencontainers/runtime-spec/1/Spec", value=b"{}")
        containers.Create(cpb.CreateContainerRequest(container=cpb.Container(
            id="b-box", runtime=cpb.Container.Runtime(name="io.containerd.runc.v2"), spec=spec,
            labels={"owner": "b"})), metadata=md(B))
        snapshots.Prepare(spb.PrepareSnapshotRequest(snapshotter=SNAPSHOTTER, key="b-layer-work"), metadata=md(B))
        snapshots.Commit(spb.CommitSnapshotRequest(snapshotter=SNAPSHOTTER, name="b-layer", key="b-layer-work"),
                         metadata=md(B))
        snapshots.Prepare(spb.PrepareSnapshotRequest(snapshotter=SNAPSHOTTER, key="b-active", parent="b-layer"),
                          metadata=md(B))
        leases.Create(lpb.CreateRequest(id="b-lease", labels={"owner": "b"}), metadata=md(B))
        leases.AddResource(lpb.AddResourceRequest(id="b-lease", resource=lpb.Resource(id=dgst(blob), type="content")),
                           metadata=md(B))
        # A exists and has something of its own
        write(content, A, "a-blob", b"a's own\n", commit=True)

        # --- content, by digest: Info, Read, Update (labels), Delete
        assert "not found" in not_found(content.Info, pb.InfoRequest(digest=dgst(blob)), metadata=md(A))
        not_found(content.Read, pb.ReadContentRequest(digest=dgst(blob)), metadata=md(A))
        not_found(content.Read, pb.ReadContentRequest(digest=dgst(blob), offset=3, size=5), metadata=md(A))
        not_found(content.Update, pb.UpdateRequest(info=pb.Info(digest=dgst(blob), labels={"owner": "a"}),
                                                   update_mask=field_mask_pb2.FieldMask(paths=["labels.owner"])),
                  metadata=md(A))
        not_found(content.Delete, pb.DeleteContentRequest(digest=dgst(blob)), metadata=md(A))
        listed = [i.digest for r in content.List(pb.ListContentRequest(), metadata=md(A)) for i in r.info]
        assert listed == [dgst(b"a's own\n")]
        # B's ingest: Status, Abort, ListStatuses; the same ref in A is A's own, fresh ingest
        not_found(content.Status, pb.StatusRequest(ref="b-ingest"), metadata=md(A))
        not_found(content.Abort, pb.AbortRequest(ref="b-ingest"), metadata=md(A))
        assert list(content.ListStatuses(pb.ListStatusesRequest(), metadata=md(A)).statuses) == []
        first = next(content.Write(iter([pb.WriteContentRequest(action=pb.STAT, ref="b-ingest")]), metadata=md(A),
                                   timeout=30))
        assert first.offset == 0  # B's 42 bytes are not resumable from A
        content.Abort(pb.AbortRequest(ref="b-ingest"), metadata=md(A))  # A's own, now gone

        # --- images
        not_found(images.Get, ipb.GetImageRequest(name="example.com/b/app:1"), metadata=md(A))
        not_found(images.Update, ipb.UpdateImageRequest(
            image=ipb.Image(name="example.com/b/app:1", target=target, labels={"owner": "a"}),
            update_mask=field_mask_pb2.FieldMask(paths=["labels.owner"])), metadata=md(A))
        not_found(images.Delete, ipb.DeleteImageRequest(name="example.com/b/app:1"), metadata=md(A))
        assert list(images.List(ipb.ListImagesRequest(), metadata=md(A)).images) == []

        # --- containers
        not_found(containers.Get, cpb.GetContainerRequest(id="b-box"), metadata=md(A))
        not_found(containers.Update, cpb.UpdateContainerRequest(
            container=cpb.Container(id="b-box", labels={"owner": "a"}),
            update_mask=field_mask_pb2.FieldMask(paths=["labels.owner"])), metadata=md(A))
        not_found(containers.Delete, cpb.DeleteContainerRequest(id="b-box"), metadata=md(A))
        assert list(containers.List(cpb.ListContainersRequest(), metadata=md(A)).containers) == []

        # --- snapshots: no info, no mounts, no usage, no labels, no removal, no commit — and
        # B's committed layer cannot be A's parent (no reading B's layers through a child)
        for key in ("b-layer", "b-active"):
            not_found(snapshots.Stat, spb.StatSnapshotRequest(snapshotter=SNAPSHOTTER, key=key), metadata=md(A))
            not_found(snapshots.Usage, spb.UsageRequest(snapshotter=SNAPSHOTTER, key=key), metadata=md(A))
            not_found(snapshots.Update, spb.UpdateSnapshotRequest(
                snapshotter=SNAPSHOTTER, info=spb.Info(name=key, labels={"owner": "a"}),
                update_mask=field_mask_pb2.FieldMask(paths=["labels.owner"])), metadata=md(A))
            not_found(snapshots.Remove, spb.RemoveSnapshotRequest(snapshotter=SNAPSHOTTER, key=key), metadata=md(A))
        not_found(snapshots.Mounts, spb.MountsRequest(snapshotter=SNAPSHOTTER, key="b-active"), metadata=md(A))
        not_found(snapshots.Commit, spb.CommitSnapshotRequest(snapshotter=SNAPSHOTTER, name="stolen", key="b-active"),
                  metadata=md(A))
        not_found(snapshots.Prepare, spb.PrepareSnapshotRequest(snapshotter=SNAPSHOTTER, key="a-child",
                                                                parent="b-layer"), metadata=md(A))
        not_found(snapshots.View, spb.ViewSnapshotRequest(snapshotter=SNAPSHOTTER, key="a-view", parent="b-layer"),
                  metadata=md(A))
        assert [i.name for r in snapshots.List(spb.ListSnapshotsRequest(snapshotter=SNAPSHOTTER), metadata=md(A))
                for i in r.info] == []

        # --- leases
        assert list(leases.List(lpb.ListRequest(), metadata=md(A)).leases) == []
        not_found(leases.Delete, lpb.DeleteRequest(id="b-lease"), metadata=md(A))
        not_found(leases.ListResources, lpb.ListResourcesRequest(id="b-lease"), metadata=md(A))
        not_found(leases.AddResource, lpb.AddResourceRequest(
            id="b-lease", resource=lpb.Resource(id=dgst(b"a's own\n"), type="content")), metadata=md(A))
        not_found(leases.DeleteResource, lpb.DeleteResourceRequest(
            id="b-lease", resource=lpb.Resource(id=dgst(blob), type="content")), metadata=md(A))

        # --- B is untouched
        info = content.Info(pb.InfoRequest(digest=dgst(blob)), metadata=md(B)).info
        assert dict(info.labels) == {"owner": "b"}
        assert b"".join(r.data for r in content.Read(pb.ReadContentRequest(digest=dgst(blob)), metadata=md(B))) == blob
        status = content.Status(pb.StatusRequest(ref="b-ingest"), metadata=md(B)).status
        assert (status.offset, status.total) == (100, 100)
        assert dict(images.Get(ipb.GetImageRequest(name="example.com/b/app:1"), metadata=md(B)).image.labels) == \
            {"owner": "b"}
        assert dict(containers.Get(cpb.GetContainerRequest(id="b-box"), metadata=md(B)).container.labels) == \
            {"owner": "b"}
        names = {i.name: i.kind for r in snapshots.List(spb.ListSnapshotsRequest(snapshotter=SNAPSHOTTER),
                                                        metadata=md(B)) for i in r.info}
        assert names == {"b-layer": spb.COMMITTED, "b-active": spb.ACTIVE}
        assert [(r.id, r.type) for r in leases.ListResources(lpb.ListResourcesRequest(id="b-lease"),
                                                               metadata=md(B)).resources] == [(dgst(blob), "content")]


@pytest.mark.root
def test_namespace_a_cannot_see_or_drive_namespace_bs_task(daemon, busybox_image):
    def pyctr(*args, ns=B, check=True):
        proc = subprocess.run([sys.executable, "-m", "pycontainerd_cmd.ctr", "-a", daemon.address,
                               "--connect-timeout", "10", "-n", ns, *map(str, args)],
                              capture_output=True, text=True, timeout=120)
        assert not check or proc.returncode == 0, proc.stderr + daemon.log()[-2000:]
        return proc

    pyctr("images", "pull", "--plain-http", busybox_image.oci.ref)
    pyctr("run", "-d", busybox_image.oci.ref, "web", "sleep", "1000")
    try:
        with daemon.channel() as ch:
            tasks = tasks_pb2_grpc.TasksStub(ch)
            b_pid = tasks.Get(tpb.GetRequest(container_id="web"), metadata=md(B)).process.pid
            assert b_pid > 0
            not_found(tasks.Get, tpb.GetRequest(container_id="web"), metadata=md(A))
            not_found(tasks.Kill, tpb.KillRequest(container_id="web", signal=9, all=True), metadata=md(A))
            not_found(tasks.ListPids, tpb.ListPidsRequest(container_id="web"), metadata=md(A))
            not_found(tasks.Pause, tpb.PauseTaskRequest(container_id="web"), metadata=md(A))
            not_found(tasks.Exec, tpb.ExecProcessRequest(container_id="web", exec_id="e1"), metadata=md(A))
            not_found(tasks.Delete, tpb.DeleteTaskRequest(container_id="web"), metadata=md(A))
            # a Create in A for B's container id finds no such container in A
            not_found(tasks.Create, tpb.CreateTaskRequest(container_id="web"), metadata=md(A))
            assert list(tasks.List(tpb.ListTasksRequest(), metadata=md(A)).tasks) == []
            after = tasks.Get(tpb.GetRequest(container_id="web"), metadata=md(B)).process
            assert (after.pid, after.status) == (b_pid, task_types.RUNNING)
    finally:
        pyctr("tasks", "kill", "-s", "KILL", "web", check=False)
        pyctr("tasks", "rm", "-f", "web", check=False)
        pyctr("containers", "rm", "web", check=False)


@pytest.mark.root
def test_registry_credentials_never_reach_logs_events_or_labels(tmp_path, registry, registry_auth):
    """A CRI pull with Basic credentials (user/password, and base64 ``auth``) and with a token
    (``identity_token``, ``registry_token``): the daemon logs at debug level, we subscribe to
    its events, and none of the secrets appears in the log, an event or a label."""
    from pycontainerd.api.cri.runtime.v1 import api_pb2 as cri
    from tests.support.cri import copy_image, cri_env

    user, password = registry_auth.username, registry_auth.password
    token = "tok-" + hashlib.sha256(b"bearer for isolation test").hexdigest()[:24]
    basic = base64.b64encode(f"{user}:{password}".encode()).decode()
    ref = f"{registry_auth.host}/iso/private:1"
    secrets = [password, basic, token]
    events: list[bytes] = []
    with cri_env(tmp_path / "cri", registry) as env:
        copy_image(env.images.busybox, ref, dest_creds=f"{user}:{password}")
        with env.daemon.channel() as ch:
            stream = events_pb2_grpc.EventsStub(ch).Subscribe(events_pb2.SubscribeRequest())

            def collect():
                try:
                    for envelope in stream:
                        events.append(envelope.SerializeToString())
                except grpc.RpcError:
                    pass

            t = threading.Thread(target=collect, daemon=True)
            t.start()
            version_pb2_grpc.VersionStub(ch).Version(empty_pb2.Empty(), timeout=10)
            c = env.client
            image_id = c.pull(ref, cri.AuthConfig(username=user, password=password, server_address=registry_auth.host))
            c.RemoveImage(cri.RemoveImageRequest(image=cri.ImageSpec(image=image_id)))
            assert c.pull(ref, cri.AuthConfig(auth=basic)) == image_id
            for bad in (cri.AuthConfig(username=user, password=token),   # wrong: the error is logged
                        cri.AuthConfig(identity_token=token),
                        cri.AuthConfig(registry_token=token)):
                with pytest.raises(grpc.RpcError):
                    c.pull(f"{registry_auth.host}/iso/private:missing", bad)
            labels = json.dumps([dict(i.spec.annotations) for i in c.ListImages(cri.ListImagesRequest()).images])
            stream.cancel()
            t.join(10)
        log = env.daemon.log()
    assert "level='debug'" in log and "PullImage" in log  # the log is at debug level and saw the pulls
    assert events, "no events were published"
    for secret in secrets:
        assert secret not in log
        assert all(secret.encode() not in e for e in events)
        assert secret not in labels


def test_shared_content_policy_is_containerds(daemon):
    """Pinned on purpose: like containerd's default ``content_sharing_policy = "shared"``, a
    namespace may add a reference to a blob that exists elsewhere by *writing* it with its
    exact digest and size (no data sent): that is how two namespaces pull one layer once.
    It never works by digest alone: Info/Read stay NOT_FOUND until such a commit, a wrong
    size is refused, and dropping A's reference leaves B's blob alone."""
    blob = b"layer both teams pull\n"
    with daemon.channel() as ch:
        content = content_pb2_grpc.ContentStub(ch)
        # rooted in B (an unrooted blob is garbage, in B as in containerd, once a GC runs)
        write(content, B, "b", blob, commit=True, labels={"containerd.io/gc.root": "2026-01-01T00:00:00Z"})
        not_found(content.Info, pb.InfoRequest(digest=dgst(blob)), metadata=md(A))
        with pytest.raises(grpc.RpcError) as err:
            list(content.Write(iter([
                pb.WriteContentRequest(action=pb.STAT, ref="a", total=len(blob) + 1, expected=dgst(blob)),
                pb.WriteContentRequest(action=pb.COMMIT, offset=len(blob) + 1, total=len(blob) + 1,
                                       expected=dgst(blob))]), metadata=md(A), timeout=30))
        assert err.value.code() == grpc.StatusCode.OUT_OF_RANGE  # not shared: a plain writer wants the data
        not_found(content.Info, pb.InfoRequest(digest=dgst(blob)), metadata=md(A))
        list(content.Write(iter([
            pb.WriteContentRequest(action=pb.STAT, ref="a", total=len(blob), expected=dgst(blob)),
            pb.WriteContentRequest(action=pb.COMMIT, offset=len(blob), total=len(blob), expected=dgst(blob))]),
            metadata=md(A), timeout=30))
        assert content.Info(pb.InfoRequest(digest=dgst(blob)), metadata=md(A)).info.size == len(blob)
        content.Delete(pb.DeleteContentRequest(digest=dgst(blob)), metadata=md(A))
        not_found(content.Info, pb.InfoRequest(digest=dgst(blob)), metadata=md(A))
        data = b"".join(r.data for r in content.Read(pb.ReadContentRequest(digest=dgst(blob)), metadata=md(B)))
        assert data == blob


def _connect_as(path: str, uid: int, gid: int, groups: list[int]) -> int:
    """0 if a process with these ids can connect to the unix socket ``path``, else the errno."""
    pid = os.fork()
    if pid == 0:  # child: drop to the ids, try, report through the exit code
        code = 100
        try:
            os.setgroups(groups)
            os.setgid(gid)
            os.setuid(uid)
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(path)
            code = 0
        except OSError as exc:
            code = exc.errno or 101
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@pytest.mark.root
def test_socket_mode_and_owner_decide_who_connects(daemon_factory):
    base = tempfile.mkdtemp(prefix="pcd-iso-")  # traversable by other users, unlike pytest's tmp
    os.chmod(base, 0o711)
    try:
        d = daemon_factory("[grpc]\nuid = 4321\ngid = 4322\n", start=False, base=Path(base))
        os.makedirs(d.base, exist_ok=True)
        d.start()
        os.chmod(d.base, 0o711)
        assert _connect_as(d.address, 4321, 4400, []) == 0              # the owner
        assert _connect_as(d.address, 4400, 4322, []) == 0              # the group
        assert _connect_as(d.address, 4400, 4400, [4322]) == 0          # a member of the group
        assert _connect_as(d.address, 4400, 4400, []) == errno.EACCES   # anyone else: refused
        d.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_tls_client_certificate_from_another_ca_is_refused(daemon_factory, tmp_path):
    def openssl(*args, cwd):
        subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)

    for ca in ("ca", "rogue"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={ca}",
                "-keyout", f"{ca}.key", "-out", f"{ca}.crt", cwd=tmp_path)
    (tmp_path / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for name, ca in (("server", "ca"), ("client", "ca"), ("intruder", "rogue")):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}.key",
                "-out", f"{name}.csr", cwd=tmp_path)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key", "-CAcreateserial",
                "-days", "1", "-out", f"{name}.crt", "-extfile", "san.ext", cwd=tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    d = daemon_factory(f'[grpc]\ntcp_address = "127.0.0.1:{port}"\ntcp_tls_cert = "{tmp_path}/server.crt"\n'
                       f'tcp_tls_key = "{tmp_path}/server.key"\ntcp_tls_ca = "{tmp_path}/ca.crt"\n')
    ca = (tmp_path / "ca.crt").read_bytes()

    def call(key, cert):
        creds = grpc.ssl_channel_credentials(ca, (tmp_path / key).read_bytes(), (tmp_path / cert).read_bytes())
        with grpc.secure_channel(f"127.0.0.1:{port}", creds) as ch:
            return version_pb2_grpc.VersionStub(ch).Version(empty_pb2.Empty(), timeout=10)

    assert call("client.key", "client.crt").version
    with pytest.raises(grpc.RpcError) as err:
        call("intruder.key", "intruder.crt")
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert d.proc.poll() is None
