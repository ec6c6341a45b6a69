"""Layers from the edges, pulled and run by Debian's ctr through our daemon: images built
by umoci and skopeo (tools we did not write) from inputs made here, pushed to the test
registry.

- ``umoci insert`` layers: end right after the last file's data (no padding, no
  end-of-archive blocks); containerd's Go reader takes them, so must we (issue 13).
- Layers whose media type lies about their compression, and a 2-frame zstd layer (C08):
  pushed as raw blobs and manifests to the real registry (no tool writes such images on
  purpose); read by their magic bytes; a wrong diffID is refused and nothing runs.
- A hardlink whose target only a lower layer holds (C03): copied up; a container's diff
  of a link emits the data once.
- Special files pulled by our daemon in a user namespace (C02): FIFO made, devices
  skipped with a warning, the opaque directory still honoured (``user.overlay.opaque``).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest
import zstandard

from pycontainerd.testing import Daemon
from tests.interop.test_ctr_foundation import ctr
from tests.support.registry import _run, _tool, native_platform

pytestmark = [pytest.mark.root]


def _base_layer(path: Path) -> Path:
    """busybox with the applets the tests use."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for d in ("bin", "etc", "opt"):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tf.addfile(info)
        data = Path("/bin/busybox").read_bytes()
        info = tarfile.TarInfo("bin/busybox")
        info.size, info.mode = len(data), 0o755
        tf.addfile(info, io.BytesIO(data))
        for applet in ("sh", "cat", "ls", "stat", "head", "ln"):
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname, info.mode = tarfile.SYMTYPE, "busybox", 0o777
            tf.addfile(info)
    return path


def _new_image(work: Path) -> str:
    """A new dir ``work`` with an OCI layout ``layout:img`` holding the busybox layer;
    returns ``<work>/layout:img``."""
    umoci = _tool("umoci", "umoci")
    os_, arch, _ = native_platform()
    work.mkdir()
    layout = f"{work}/layout:img"
    _run(umoci, "init", "--layout", str(work / "layout"))
    _run(umoci, "new", "--image", layout)
    _run(umoci, "raw", "add-layer", "--image", layout, str(_base_layer(work / "base.tar")))
    _run(umoci, "config", "--image", layout, "--config.cmd", "sh", "--os", os_, "--architecture", arch)
    return layout


def _push(work: Path, layout: str, registry, name: str) -> str:
    skopeo = _tool("skopeo", "skopeo")
    ref = f"{registry.host}/edges/{name}:latest"
    _run(skopeo, "copy", "--quiet", "--dest-tls-verify=false", f"oci:{layout}", f"docker://{ref}")
    return ref


@pytest.fixture(scope="module")
def workdir():
    work = Path(tempfile.mkdtemp(prefix="pcd-edges-"))
    yield work
    shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def umoci_inserted(registry, workdir) -> str:
    work = workdir / "inserted"
    layout, umoci = _new_image(work), _tool("umoci", "umoci")
    (work / "f.txt").write_bytes(b"hello from umoci insert\n")  # 24 bytes: 488 of padding missing
    tree = work / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub/g").write_bytes(b"g" * 700)
    (tree / "exact").write_bytes(b"e" * 1024)
    _run(umoci, "insert", "--image", layout, str(work / "f.txt"), "/etc/f.txt")
    _run(umoci, "insert", "--image", layout, str(tree), "/opt/tree")
    return _push(work, layout, registry, "umoci-insert")


def _last_layers_unpadded(workdir: Path) -> bool:
    """Sanity: umoci really wrote layers ending right after a file's data."""
    import gzip

    blobs = workdir / "inserted/layout/blobs/sha256"
    ends = []
    for blob in blobs.iterdir():
        raw = blob.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            tar = gzip.decompress(raw)
            ends.append(len(tar) % 512 != 0)
    return any(ends)


def test_umoci_insert_layers_pull_and_run_through_ctr(ctr_bin, daemon, umoci_inserted, workdir):
    assert _last_layers_unpadded(workdir)
    ctr(ctr_bin, daemon, "images", "pull", "--plain-http", umoci_inserted)
    out = ctr(ctr_bin, daemon, "run", "--rm", umoci_inserted, "umoci-insert", "sh", "-c",
              "cat /etc/f.txt; head -c 3 /opt/tree/sub/g; echo; stat -c %s /opt/tree/sub/g /opt/tree/exact").stdout
    assert out.splitlines() == ["hello from umoci insert", "ggg", "700", "1024"]
    snaps = ctr(ctr_bin, daemon, "snapshots", "ls").stdout.splitlines()[1:]
    assert len(snaps) == 3 and all(line.split()[-1] == "Committed" for line in snaps)


def test_umoci_insert_layer_in_a_docker_archive_imports_and_runs(ctr_bin, daemon, umoci_inserted, workdir):
    """The import path: ctr exports the pulled image, then imports it into a fresh namespace."""
    ctr(ctr_bin, daemon, "images", "pull", "--plain-http", umoci_inserted)
    archive = workdir / "export.tar"
    ctr(ctr_bin, daemon, "images", "export", str(archive), umoci_inserted)
    ctr(ctr_bin, daemon, "images", "import", str(archive), ns="edges-import")
    out = ctr(ctr_bin, daemon, "run", "--rm", umoci_inserted, "imported", "cat", "/etc/f.txt",
              ns="edges-import").stdout
    assert out == "hello from umoci insert\n"
    os.unlink(archive)


# --- C08: compression by magic bytes ----------------------------------------------------------

OCI_TAR = "application/vnd.oci.image.layer.v1.tar"


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _one_file_tar(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _push_raw(registry, repo: str, tag: str, layers: list[tuple[bytes, str, str]]) -> str:
    """Push ``layers`` ((blob, media type, diffID)) over the busybox base as an OCI image."""
    base = _base_layer(Path(tempfile.mkdtemp(prefix="pcd-edges-base-")) / "base.tar")
    base_tar = base.read_bytes()
    shutil.rmtree(base.parent)
    layers = [(gzip.compress(base_tar, mtime=0), OCI_TAR + "+gzip", _sha(base_tar)), *layers]
    os_, arch, _ = native_platform()
    config = json.dumps({"architecture": arch, "os": os_, "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": [d for _, _, d in layers]}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": _sha(config),
                   "size": len(config)},
        "layers": [{"mediaType": m, "digest": _sha(b), "size": len(b)} for b, m, _ in layers],
    }).encode()
    with registry.client() as c:
        for blob in [config, *(b for b, _, _ in layers)]:
            r = c.post(f"/v2/{repo}/blobs/uploads/")
            r.raise_for_status()
            loc = r.headers["location"]
            sep = "&" if "?" in loc else "?"
            r = c.put(f"{loc}{sep}digest={_sha(blob)}", content=blob,
                      headers={"Content-Type": "application/octet-stream"})
            r.raise_for_status()
        r = c.put(f"/v2/{repo}/manifests/{tag}", content=manifest,
                  headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        r.raise_for_status()
    return f"{registry.host}/{repo}:{tag}"


def _zstd_frames(data: bytes) -> bytes:
    half = len(data) // 2
    cctx = zstandard.ZstdCompressor()
    return cctx.compress(data[:half]) + cctx.compress(data[half:])


_PAYLOAD = b"c08 payload " * 300


@pytest.mark.parametrize("codec, media_type", [
    pytest.param(_zstd_frames, OCI_TAR + "+zstd", id="zstd-2-frames"),
    pytest.param(lambda t: zstandard.ZstdCompressor().compress(t), OCI_TAR + "+gzip", id="zstd-as-gzip"),
    pytest.param(lambda t: gzip.compress(t, mtime=0), OCI_TAR, id="gzip-as-oci-tar"),
    pytest.param(lambda t: gzip.compress(t, mtime=0), "application/vnd.docker.image.rootfs.diff.tar",
                 id="gzip-as-docker-tar"),
])
def test_layer_read_by_its_magic_bytes_through_ctr(ctr_bin, daemon, registry, codec, media_type, request):
    tar = _one_file_tar("c08/file", _PAYLOAD)
    name = request.node.callspec.id
    ref = _push_raw(registry, "edges/c08", name, [(codec(tar), media_type, _sha(tar))])
    ctr(ctr_bin, daemon, "images", "pull", "--plain-http", ref)
    out = ctr(ctr_bin, daemon, "run", "--rm", ref, f"c08-{name}", "cat", "/c08/file").stdout
    assert out.encode() == _PAYLOAD


def test_wrong_diff_id_is_refused_and_nothing_runs(ctr_bin, daemon, registry):
    tar = _one_file_tar("c08/file", _PAYLOAD)
    ref = _push_raw(registry, "edges/c08", "wrong-diffid", [(gzip.compress(tar, mtime=0), OCI_TAR + "+gzip",
                                                             _sha(tar + b"x"))])
    pulled = ctr(ctr_bin, daemon, "images", "pull", "--plain-http", ref, check=False)
    assert pulled.returncode != 0 and "diff" in pulled.stderr.lower()
    ran = ctr(ctr_bin, daemon, "run", "--rm", ref, "c08-wrong", "true", check=False)
    assert ran.returncode != 0
    assert ctr(ctr_bin, daemon, "containers", "ls", "-q").stdout.split() == []
    # nothing committed for the refused layer and no active snapshot left (at most the
    # base layer's, until the garbage collector takes it)
    snaps = ctr(ctr_bin, daemon, "snapshots", "ls").stdout.splitlines()[1:]
    assert len(snaps) <= 1 and all(line.split()[-1] == "Committed" for line in snaps), snaps


def test_docker_archive_with_a_zstd_layer_imports_and_runs(ctr_bin, daemon, workdir):
    base_tar = _base_layer(workdir / "c08-base.tar").read_bytes()
    top = _one_file_tar("c08/archive-zstd", b"zstd in docker archive")
    zlayer = zstandard.ZstdCompressor().compress(top)
    os_, arch, _ = native_platform()
    config = json.dumps({"architecture": arch, "os": os_, "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": [_sha(base_tar), _sha(top)]}}).encode()
    archive = workdir / "c08.docker.tar"
    with tarfile.open(archive, "w") as tf:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        add("base/layer.tar", base_tar)
        add("top/layer.tar", zlayer)
        add("config.json", config)
        add("manifest.json", json.dumps([{"Config": "config.json", "RepoTags": ["edges.local/c08:archive"],
                                          "Layers": ["base/layer.tar", "top/layer.tar"]}]).encode())
    ctr(ctr_bin, daemon, "images", "import", str(archive))
    out = ctr(ctr_bin, daemon, "run", "--rm", "edges.local/c08:archive", "c08-arch", "cat", "/c08/archive-zstd")
    assert out.stdout == "zstd in docker archive"


# --- C03: hardlinks across layers ---------------------------------------------------------------


def _tar_file(path: Path, entries) -> Path:
    """entries: (name, data | None for a directory | ("link", target))."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for name, what in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1_600_000_000
            if what is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(info)
            elif isinstance(what, tuple):
                info.type, info.linkname, info.mode = tarfile.LNKTYPE, what[1], 0o644
                tf.addfile(info)
            else:
                info.size, info.mode = len(what), 0o644
                tf.addfile(info, io.BytesIO(what))
    return path


@pytest.fixture(scope="module")
def hardlinks_image(registry, workdir) -> str:
    """L1: hl/a = X and a same-layer link same/two -> same/one; L2: hl/b -> hl/a (target
    only in L1); L3: hl/a = Y. Built by umoci from tars written here."""
    work = workdir / "c03"
    layout, umoci = _new_image(work), _tool("umoci", "umoci")
    layers = [
        _tar_file(work / "l1.tar", [("hl", None), ("hl/a", b"X"), ("same", None), ("same/one", b"1"),
                                    ("same/two", ("link", "same/one"))]),
        _tar_file(work / "l2.tar", [("hl", None), ("hl/b", ("link", "hl/a"))]),
        _tar_file(work / "l3.tar", [("hl", None), ("hl/a", b"Y")]),
    ]
    for layer in layers:
        _run(umoci, "raw", "add-layer", "--image", layout, str(layer))
    return _push(work, layout, registry, "c03-hardlinks")


def _diff_entries(data: bytes) -> list[tuple[str, str, bytes]]:
    """(name, type, data or link target) of a layer diff; checks no path twice and every
    hardlink names an earlier regular file of the same tar."""
    out, regular = [], set()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tf:
        for m in tf.getmembers():
            name = m.name.rstrip("/")
            assert name not in [n for n, _, _ in out], f"{name} twice"
            if m.islnk():
                assert m.linkname in regular, f"hardlink {name} -> {m.linkname}: not an earlier file"
                out.append((name, "link", m.linkname.encode()))
            elif m.isreg():
                regular.add(name)
                out.append((name, "file", tf.extractfile(m).read()))
            else:
                out.append((name, "other", b""))
    return out


def test_hardlink_to_a_lower_layer_file_unpacks_and_diffs(ctr_bin, daemon, hardlinks_image):
    ref = hardlinks_image
    ctr(ctr_bin, daemon, "images", "pull", "--plain-http", ref)
    out = ctr(ctr_bin, daemon, "run", "--rm", ref, "c03", "sh", "-c",
              'echo "a=$(cat /hl/a) b=$(cat /hl/b)"; stat -c "%i %h" /same/one /same/two | sort -u | wc -l;'
              " stat -c %h /same/one").stdout
    assert out.split("\n")[:3] == ["a=Y b=X", "1", "2"]
    # a container links a lower file: its diff carries the data once, then the link
    ctr(ctr_bin, daemon, "run", ref, "c03-diff", "ln", "/hl/a", "/hl/c")
    diff = subprocess.run([ctr_bin, "--address", daemon.address, "snapshots", "diff", "c03-diff"],
                          capture_output=True, timeout=60, check=True).stdout
    entries = _diff_entries(diff)
    files = [(n, d) for n, t, d in entries if t == "file"]
    links = [(n, d) for n, t, d in entries if t == "link"]
    assert len(files) == 1 and files[0][1] == b"Y" and files[0][0] in ("hl/a", "hl/c")
    assert len(links) == 1 and {links[0][0], files[0][0]} == {"hl/a", "hl/c"}
    ctr(ctr_bin, daemon, "containers", "rm", "c03-diff")


# --- C02: special files under a daemon in a user namespace -----------------------------------


class _UsernsDaemon(Daemon):
    """Our daemon as the corpus runs a rootless one: ``unshare -Urm`` (root in a new user
    namespace: no CAP_MKNOD, no trusted.* xattrs; overlay mounted with ``userxattr``)."""

    def command(self) -> list[str]:
        return ["unshare", "-Urm", "--propagation", "private", *super().command()]


@pytest.fixture(scope="module")
def special_files_image(registry, workdir) -> str:
    work = workdir / "c02"
    layout, umoci = _new_image(work), _tool("umoci", "umoci")
    l1 = _tar_file(work / "l1.tar", [("etc/lower-only", b"l"), ("etc/sub", None), ("etc/sub/lower", b"l")])
    l2 = work / "l2.tar"
    with tarfile.open(l2, "w", format=tarfile.PAX_FORMAT) as tf:
        for name, kind, major, minor in (("specials/fifo", tarfile.FIFOTYPE, 0, 0),
                                         ("specials/null", tarfile.CHRTYPE, 1, 3),
                                         ("specials/loop7", tarfile.BLKTYPE, 7, 7)):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.devmajor, info.devminor = kind, 0o644, major, minor
            tf.addfile(info)
    with tarfile.open(l2, "a", format=tarfile.PAX_FORMAT) as tf:
        for name, data in (("etc/.wh..wh..opq", b""), ("etc/c02-only", b"c"), ("etc/sub/file", b"f")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    for layer in (l1, l2):
        _run(umoci, "raw", "add-layer", "--image", layout, str(layer))
    return _push(work, layout, registry, "c02-special-files")


def test_special_files_under_a_daemon_in_a_user_namespace(ctr_bin, special_files_image):
    base = Path(tempfile.mkdtemp(prefix="pcd-userns-", dir="/var/tmp"))
    os.chmod(base, 0o755)
    d = _UsernsDaemon(base=base)
    mnt = base / "mnt"
    mounted = False
    try:
        d.start()
        ctr(ctr_bin, d, "images", "pull", "--plain-http", special_files_image)
        assert "device node skipped" in d.log()
        mnt.mkdir()
        ctr(ctr_bin, d, "images", "mount", special_files_image, str(mnt))
        mounted = True
        assert stat.S_ISFIFO((mnt / "specials/fifo").lstat().st_mode)
        assert not (mnt / "specials/null").exists() and not (mnt / "specials/loop7").exists()
        assert sorted(os.listdir(mnt / "etc")) == ["c02-only", "sub"]  # the opaque /etc
        assert sorted(os.listdir(mnt / "etc/sub")) == ["file"]
        uppers = d.root / "io.containerd.snapshotter.v1.overlayfs" / "snapshots"
        marks = [os.getxattr(p / "fs/etc", "user.overlay.opaque") for p in uppers.iterdir()
                 if (p / "fs/etc/c02-only").exists()]
        assert marks == [b"y"]
    finally:
        if mounted:
            ctr(ctr_bin, d, "images", "unmount", str(mnt), check=False)
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
        d.stop()
        shutil.rmtree(base, ignore_errors=True)
