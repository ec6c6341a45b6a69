"""Debian's ctr (containerd 1.6.20's client) drives the Content service: ingest (with and
without expectations), ls, get, label, active, rm, namespace isolation, and namespace
deletion with blobs left. Then wire-level checks of the subtle parts of the protocol
(Write actions and offsets, Read ranges, List batching, the lease header) with a raw gRPC
client against the same kind of daemon.

Un-leased, unreferenced blobs (everything ``ctr content ingest`` writes) are collectable,
exactly as in containerd, so a start-up garbage collection racing the first ingest would
make these tests flaky: each daemon runs its start-up collection at once, and the fixture
waits for it (``ctr leases rm --sync`` runs a collection, after the one in progress).
Collections after ``ctr content rm`` do run, and are checked.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
import time

import grpc
import pytest

from pycontainerd.api.services.content.v1 import content_pb2 as pb
from pycontainerd.api.services.content.v1 import content_pb2_grpc
from pycontainerd.api.services.leases.v1 import leases_pb2, leases_pb2_grpc

pytestmark = pytest.mark.interop

CONFIG = """
version = 2
[plugins."io.containerd.gc.v1.scheduler"]
startup_delay = 0.0
"""


def dgst(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def d(daemon_factory, ctr_bin):
    daemon = daemon_factory(config_text=CONFIG)
    ctr(ctr_bin, daemon, "leases", "create", "--id", "wait-for-startup-gc", ns="gc-flush")
    ctr(ctr_bin, daemon, "leases", "rm", "--sync", "wait-for-startup-gc", ns="gc-flush")
    return daemon


def ctr(ctr_bin, daemon, *args, ns=None, stdin=None, check=True, text=True):
    cmd = [ctr_bin, "--address", daemon.address, "--connect-timeout", "5s"]
    if ns:
        cmd += ["--namespace", ns]
    proc = subprocess.run(cmd + list(args), input=stdin, capture_output=True, text=text, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"ctr {' '.join(args)} failed ({proc.returncode}): {proc.stderr}\n{daemon.log()}")
    return proc


def ls_rows(ctr_bin, daemon, ns=None) -> dict[str, list[str]]:
    lines = ctr(ctr_bin, daemon, "content", "ls", ns=ns).stdout.splitlines()
    assert lines[0].split() == ["DIGEST", "SIZE", "AGE", "LABELS"]
    return {line.split()[0]: line.split("\t") for line in lines[1:]}


def blob_file(daemon, digest: str):
    return daemon.root / "io.containerd.content.v1.content" / "blobs" / "sha256" / digest.split(":")[1]


def test_ingest_ls_get_label_rm(ctr_bin, d):
    small = b"hello\n"
    ctr(ctr_bin, d, "content", "ingest", "small-1", stdin=small, text=False)
    rows = ls_rows(ctr_bin, d)
    assert list(rows) == [dgst(small)]
    row = [c for c in rows[dgst(small)] if c]
    assert row[1] == "6B" and row[-1] == "-"
    assert blob_file(d, dgst(small)).read_bytes() == small
    assert oct(blob_file(d, dgst(small)).stat().st_mode & 0o777) == "0o444"

    # several 1 MiB chunks each way, with both expectations given
    big = os.urandom(3 * (1 << 20) + 12345)
    ctr(ctr_bin, d, "content", "ingest", "--expected-size", str(len(big)), "--expected-digest", dgst(big),
        "big-1", stdin=big, text=False)
    got = ctr(ctr_bin, d, "content", "get", dgst(big), text=False).stdout
    assert got == big
    assert ctr(ctr_bin, d, "content", "get", dgst(small), text=False).stdout == small
    assert set(ctr(ctr_bin, d, "content", "ls", "-q").stdout.split()) == {dgst(small), dgst(big)}
    # the same content again (AlreadyExists underneath) is success for the client
    ctr(ctr_bin, d, "content", "ingest", "--expected-digest", dgst(small), "small-2", stdin=small, text=False)

    out = ctr(ctr_bin, d, "content", "label", dgst(small), "team=a", "containerd.io/gc.root=keep").stdout
    assert sorted(out.strip().split(",")) == ["containerd.io/gc.root=keep", "team=a"]
    assert "team=a" in ls_rows(ctr_bin, d)[dgst(small)][-1]
    assert ctr(ctr_bin, d, "content", "label", dgst(small), "team=").stdout.strip() == "containerd.io/gc.root=keep"
    assert ctr(ctr_bin, d, "content", "ls", "-q", "labels.team").stdout.split() == []
    assert ctr(ctr_bin, d, "content", "ls", "-q", 'labels."containerd.io/gc.root"==keep').stdout.split() == [
        dgst(small)
    ]

    rm = ctr(ctr_bin, d, "content", "rm", dgst(big))
    assert rm.stdout.split() == [dgst(big)]
    assert list(ls_rows(ctr_bin, d)) == [dgst(small)]
    missing = ctr(ctr_bin, d, "content", "get", dgst(big), check=False)
    assert missing.returncode != 0 and "not found" in missing.stderr
    # rm of something absent is silent success in ctr (it checks for NOT_FOUND)
    assert ctr(ctr_bin, d, "content", "rm", dgst(big)).stdout == ""
    # the delete asked for a collection: the file goes, the gc.root-labelled blob stays
    deadline = time.monotonic() + 10
    while blob_file(d, dgst(big)).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not blob_file(d, dgst(big)).exists()
    assert blob_file(d, dgst(small)).exists()


def test_ingest_with_wrong_expectations_commits_nothing(ctr_bin, d):
    data = b"some bytes"
    wrong = dgst(b"other bytes")
    bad = ctr(ctr_bin, d, "content", "ingest", "--expected-digest", wrong, "bad-digest",
              stdin=data, text=False, check=False)
    assert bad.returncode != 0
    assert f"unexpected commit digest {dgst(data)}, expected {wrong}".encode() in bad.stderr
    assert b"failed precondition" in bad.stderr
    bad = ctr(ctr_bin, d, "content", "ingest", "--expected-size", "5", "bad-size",
              stdin=data, text=False, check=False)
    assert bad.returncode != 0 and b"failed size validation" in bad.stderr
    assert ctr(ctr_bin, d, "content", "ls", "-q").stdout.split() == []
    assert not blob_file(d, dgst(data)).exists()
    # as in containerd the failed ingests stay, resumable; ctr content active lists them
    active = ctr(ctr_bin, d, "content", "active").stdout.splitlines()
    assert active[0].split() == ["REF", "SIZE", "AGE"]
    assert sorted(line.split()[:2] for line in active[1:]) == [["bad-digest", "10B"], ["bad-size", "10B"]]
    # an invalid digest never reaches the server's store
    bad = ctr(ctr_bin, d, "content", "ingest", "--expected-digest", "sha256:nope", "x", stdin="", check=False)
    assert bad.returncode != 0 and "invalid checksum digest" in bad.stderr


def test_active_shows_an_open_ingest(ctr_bin, d):
    release = threading.Event()

    def requests():
        yield pb.WriteContentRequest(action=pb.STAT, ref="slow-upload", total=100)
        yield pb.WriteContentRequest(action=pb.WRITE, offset=0, data=b"x" * 42)
        release.wait(30)

    with d.channel() as ch:
        try:
            stream = content_pb2_grpc.ContentStub(ch).Write(
                requests(), metadata=[("containerd-namespace", "default")], timeout=60
            )
            first, second = next(stream), next(stream)
            assert (first.action, first.offset, first.total) == (pb.STAT, 0, 100)
            assert (second.action, second.offset) == (pb.WRITE, 42)
            rows = ctr(ctr_bin, d, "content", "active").stdout.splitlines()[1:]
            assert [row.split()[:2] for row in rows] == [["slow-upload", "42B"]]
            assert ctr(ctr_bin, d, "content", "active", "ref==nothing").stdout.splitlines()[1:] == []
        finally:
            release.set()
        rest = list(stream)
        assert [r.offset for r in rest] == [42]  # containerd sends the last response once more
    # closed without commit: still resumable, still listed
    assert [row.split()[:2] for row in ctr(ctr_bin, d, "content", "active").stdout.splitlines()[1:]] == [
        ["slow-upload", "42B"]
    ]


def test_namespace_isolation_and_namespace_rm(ctr_bin, d):
    data = b"team data\n"
    ctr(ctr_bin, d, "content", "ingest", "t-1", ns="team", stdin=data, text=False)
    assert ctr(ctr_bin, d, "content", "ls", "-q", ns="team").stdout.split() == [dgst(data)]
    # another namespace cannot see it, not even by digest
    other = ctr(ctr_bin, d, "content", "get", dgst(data), ns="other", check=False)
    assert other.returncode != 0 and "not found" in other.stderr
    assert ctr(ctr_bin, d, "content", "ls", "-q", ns="other").stdout.split() == []
    label = ctr(ctr_bin, d, "content", "label", dgst(data), "x=y", ns="other", check=False)
    assert label.returncode != 0 and "not found" in label.stderr
    assert ctr(ctr_bin, d, "content", "rm", dgst(data), ns="other").stdout == ""  # NOT_FOUND: nothing removed
    assert ctr(ctr_bin, d, "content", "get", dgst(data), ns="team", text=False).stdout == data

    refused = ctr(ctr_bin, d, "namespaces", "rm", "team", check=False)
    assert refused.returncode != 0
    assert 'namespace "team" must be empty, but it still has blobs' in refused.stderr
    assert "team" in ctr(ctr_bin, d, "namespaces", "ls", "-q").stdout.split()
    ctr(ctr_bin, d, "content", "rm", dgst(data), ns="team")
    assert ctr(ctr_bin, d, "namespaces", "rm", "team").stdout.strip() == "team"
    assert "team" not in ctr(ctr_bin, d, "namespaces", "ls", "-q").stdout.split()


# --- the wire protocol, with a raw gRPC client ---------------------------------------------

NS = [("containerd-namespace", "default")]


def write_stream(stub, requests, metadata=NS):
    return list(stub.Write(iter(requests), metadata=metadata, timeout=30))


def test_write_protocol(d):
    data = b"0123456789"
    with d.channel() as ch:
        stub = content_pb2_grpc.ContentStub(ch)
        out = write_stream(stub, [
            pb.WriteContentRequest(action=pb.STAT, ref="w1", total=len(data), expected=dgst(data)),
            pb.WriteContentRequest(action=pb.WRITE, offset=0, data=data[:4]),
            pb.WriteContentRequest(action=pb.WRITE, offset=4, data=data[4:]),
            pb.WriteContentRequest(action=pb.COMMIT, offset=len(data), total=len(data), expected=dgst(data),
                                   labels={"k": "v"}),
        ])
        assert [(r.action, r.offset) for r in out] == [
            (pb.STAT, 0), (pb.WRITE, 4), (pb.WRITE, 10), (pb.COMMIT, 10), (pb.COMMIT, 10)
        ]
        assert out[0].total == len(data) and out[0].started_at.seconds > 0
        assert out[0].digest == dgst(b"")
        assert out[3].digest == dgst(data)
        info = stub.Info(pb.InfoRequest(digest=dgst(data)), metadata=NS).info
        assert (info.size, dict(info.labels)) == (len(data), {"k": "v"})

        # a write elsewhere than the current offset is OUT_OF_RANGE; the ingest survives
        with pytest.raises(grpc.RpcError) as exc:
            write_stream(stub, [
                pb.WriteContentRequest(action=pb.WRITE, ref="w2", offset=0, data=b"abc"),
                pb.WriteContentRequest(action=pb.WRITE, offset=7, data=b"def"),
            ])
        assert exc.value.code() == grpc.StatusCode.OUT_OF_RANGE
        assert "write @7 must occur at current offset 3" in exc.value.details()
        status = stub.Status(pb.StatusRequest(ref="w2"), metadata=NS).status
        assert (status.ref, status.offset) == ("w2", 3)
        # resume at the offset, then commit; offset 0 on a non-empty ingest restarts it
        out = write_stream(stub, [
            pb.WriteContentRequest(action=pb.STAT, ref="w2"),
            pb.WriteContentRequest(action=pb.WRITE, offset=3, data=b"def"),
            pb.WriteContentRequest(action=pb.WRITE, offset=0, data=b"xyz"),
            pb.WriteContentRequest(action=pb.COMMIT, offset=3),
        ])
        assert [r.offset for r in out] == [3, 6, 3, 3, 3]
        assert out[-1].digest == dgst(b"xyz")

        # the first message must name the ref
        with pytest.raises(grpc.RpcError) as exc:
            write_stream(stub, [pb.WriteContentRequest(action=pb.STAT)])
        assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "first message must have a reference" in exc.value.details()
        # an expected digest already here: ALREADY_EXISTS, which clients take as success
        with pytest.raises(grpc.RpcError) as exc:
            write_stream(stub, [pb.WriteContentRequest(action=pb.STAT, ref="w3", expected=dgst(data))])
        assert exc.value.code() == grpc.StatusCode.ALREADY_EXISTS
        # a digest mismatch at commit: FAILED_PRECONDITION and no blob
        with pytest.raises(grpc.RpcError) as exc:
            write_stream(stub, [
                pb.WriteContentRequest(action=pb.WRITE, ref="w4", data=b"abc"),
                pb.WriteContentRequest(action=pb.COMMIT, offset=3, expected=dgst(b"abd")),
            ])
        assert exc.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "unexpected commit digest" in exc.value.details()
        with pytest.raises(grpc.RpcError) as exc:
            stub.Info(pb.InfoRequest(digest=dgst(b"abc")), metadata=NS)
        assert exc.value.code() == grpc.StatusCode.NOT_FOUND
        stub.Abort(pb.AbortRequest(ref="w4"), metadata=NS)
        with pytest.raises(grpc.RpcError) as exc:
            stub.Abort(pb.AbortRequest(ref="w4"), metadata=NS)
        assert exc.value.code() == grpc.StatusCode.NOT_FOUND
        assert list(stub.ListStatuses(pb.ListStatusesRequest(), metadata=NS).statuses) == []
        with pytest.raises(grpc.RpcError) as exc:
            stub.Info(pb.InfoRequest(digest="sha256:short"), metadata=NS)
        assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_read_ranges(d):
    data = os.urandom(2 * (1 << 20) + 100)
    with d.channel() as ch:
        stub = content_pb2_grpc.ContentStub(ch)
        write_stream(stub, [pb.WriteContentRequest(action=pb.COMMIT, ref="r", data=data, expected=dgst(data))])

        def read(offset=0, size=0):
            return list(stub.Read(pb.ReadContentRequest(digest=dgst(data), offset=offset, size=size),
                                  metadata=NS, timeout=30))

        whole = read()
        assert [len(r.data) for r in whole] == [1 << 20, 1 << 20, 100]
        assert [r.offset for r in whole] == [0, 1 << 20, 2 << 20]
        assert b"".join(r.data for r in whole) == data
        part = read(offset=(1 << 20) - 10, size=20)
        assert [(r.offset, r.data) for r in part] == [(0, data[(1 << 20) - 10 : (1 << 20) + 10])]
        assert b"".join(r.data for r in read(offset=len(data) - 5, size=100)) == data[-5:]
        assert read(offset=len(data)) == []
        with pytest.raises(grpc.RpcError) as exc:
            read(offset=len(data) + 1)
        assert exc.value.code() == grpc.StatusCode.OUT_OF_RANGE
        assert "read past object length" in exc.value.details()
        with pytest.raises(grpc.RpcError) as exc:
            list(stub.Read(pb.ReadContentRequest(digest=dgst(data)), metadata=[("containerd-namespace", "x")]))
        assert exc.value.code() == grpc.StatusCode.NOT_FOUND


def test_list_is_batched(d):
    with d.channel() as ch:
        stub = content_pb2_grpc.ContentStub(ch)
        blobs = [f"blob {i}".encode() for i in range(130)]
        for i, data in enumerate(blobs):
            write_stream(stub, [pb.WriteContentRequest(action=pb.COMMIT, ref=f"b{i}", data=data)])
        batches = list(stub.List(pb.ListContentRequest(), metadata=NS, timeout=30))
        assert [len(b.info) for b in batches] == [100, 30]
        assert {i.digest for b in batches for i in b.info} == {dgst(x) for x in blobs}
        only = list(stub.List(pb.ListContentRequest(filters=[f"digest=={dgst(blobs[7])}"]), metadata=NS))
        assert [i.digest for b in only for i in b.info] == [dgst(blobs[7])]
        update = stub.Update(pb.UpdateRequest(info=pb.Info(digest=dgst(blobs[0]), labels={"a": "b"}),
                                              update_mask={"paths": ["labels.a"]}), metadata=NS)
        assert dict(update.info.labels) == {"a": "b"}
        with pytest.raises(grpc.RpcError) as exc:
            list(stub.List(pb.ListContentRequest(filters=["digest=="]), metadata=NS))
        assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_lease_header_holds_what_is_written(d):
    data = b"leased"
    with d.channel() as ch:
        leases = leases_pb2_grpc.LeasesStub(ch)
        leases.Create(leases_pb2.CreateRequest(id="pull"), metadata=NS)
        stub = content_pb2_grpc.ContentStub(ch)
        md = NS + [("containerd-lease", "pull")]
        stream = stub.Write(iter([pb.WriteContentRequest(action=pb.WRITE, ref="lr", data=data)]), metadata=md)
        assert [r.offset for r in stream] == [6, 6]
        held = leases.ListResources(leases_pb2.ListResourcesRequest(id="pull"), metadata=NS).resources
        assert [(r.type, r.id) for r in held] == [("ingests", "lr")]
        write_stream(stub, [pb.WriteContentRequest(action=pb.COMMIT, ref="lr", offset=6)], metadata=md)
        held = leases.ListResources(leases_pb2.ListResourcesRequest(id="pull"), metadata=NS).resources
        assert [(r.type, r.id) for r in held] == [("content", dgst(data))]
        with pytest.raises(grpc.RpcError) as exc:
            write_stream(stub, [pb.WriteContentRequest(action=pb.STAT, ref="x")],
                         metadata=NS + [("containerd-lease", "missing")])
        assert exc.value.code() == grpc.StatusCode.NOT_FOUND


def ingest_dirs(daemon) -> list[str]:
    return sorted(os.listdir(daemon.root / "io.containerd.content.v1.content" / "ingest"))


def active_refs(ctr_bin, daemon) -> list[str]:
    return [row.split()[0] for row in ctr(ctr_bin, daemon, "content", "active").stdout.splitlines()[1:]]


def test_issue18_an_ingest_collected_while_written_leaves_nothing_unlisted(ctr_bin, d):
    """Issue 18.6: ``ctr images import`` that fails deletes its lease while its write stream
    is still open; the collection that follows drops the ingest from the namespace. Its data
    must not stay behind where ``ctr content active`` cannot see it: once the stream ends
    it is gone, as containerd's collector removes it."""
    lease = "import-lease"
    ctr(ctr_bin, d, "leases", "create", "--id", lease)
    release = threading.Event()

    def requests():
        yield pb.WriteContentRequest(action=pb.STAT, ref="tar-blobs/sha256/layer", total=1 << 20)
        yield pb.WriteContentRequest(action=pb.WRITE, offset=0, data=b"x" * 4096)
        release.wait(30)

    with d.channel() as ch:
        stream = content_pb2_grpc.ContentStub(ch).Write(
            requests(), metadata=[("containerd-namespace", "default"), ("containerd-lease", lease)], timeout=60)
        try:
            next(stream), next(stream)
            rows = ctr(ctr_bin, d, "content", "active").stdout.splitlines()[1:]
            assert [row.split()[:2] for row in rows] == [["tar-blobs/sha256/layer", "4.096kB"]]
            assert len(ingest_dirs(d)) == 1
            ctr(ctr_bin, d, "leases", "rm", "--sync", lease)  # the client gives up
            assert active_refs(ctr_bin, d) == []  # collected from the namespace
        finally:
            release.set()
        list(stream)
    deadline = time.monotonic() + 10
    while ingest_dirs(d) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ingest_dirs(d) == [] and active_refs(ctr_bin, d) == []


def test_issue18_ctr_import_cut_short_leaves_only_listed_ingests(ctr_bin, d, busybox_image, tmp_path):
    """The same through Debian's ``ctr images import`` of an archive cut in a layer (a
    download that stopped): whatever ingest stays on disk is one ``ctr content active``
    lists (here none: ctr deletes its lease when the import fails)."""
    archive = tmp_path / "busybox.tar"
    subprocess.run(["skopeo", "copy", "--quiet", f"oci:{busybox_image.layout}:latest",
                    f"oci-archive:{archive}:example.com/busybox:1"], check=True, capture_output=True)
    data = archive.read_bytes()
    layer = busybox_image.oci.layer_digests[0].split(":")[1]
    import tarfile

    with tarfile.open(archive) as tf:
        member = tf.getmember(f"blobs/sha256/{layer}")
    cut = data[:member.offset_data + member.size // 2]
    failed = ctr(ctr_bin, d, "images", "import", "-", stdin=cut, text=False, check=False)
    assert failed.returncode != 0 and layer.encode() in failed.stderr, failed.stderr
    deadline = time.monotonic() + 10
    while ingest_dirs(d) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ingest_dirs(d) == [] and active_refs(ctr_bin, d) == []
    assert ctr(ctr_bin, d, "images", "ls", "-q").stdout.split() == []
