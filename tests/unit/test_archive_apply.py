"""apply_layer, compression and write_diff on layers built here with Python's tarfile.

Most tests run without root (owners are the current user, no device nodes, no trusted
xattrs); the rest are marked ``root``.
"""

from __future__ import annotations

import errno
import gzip
import io
import os
import shutil
import stat
import subprocess
import tarfile
import threading

import pytest

from pycontainerd.archive import (
    Compression,
    apply_layer,
    detect_compression,
    diff_compression,
)
from pycontainerd.archive.compression import compress_stream, decompress_stream
from pycontainerd.archive.diff import write_diff
from pycontainerd.archive.rootpath import clean_name, remove_all
from pycontainerd.errdefs import InvalidArgument
from tests.support.layers import Layer, gz, sha256, tree, tree_diff, zst


def apply(data: bytes, root, *, overlay=False, media_type=None, **kw):
    return apply_layer(io.BytesIO(data), root, overlay_whiteouts=overlay, media_type=media_type, **kw)


def user_xattrs_supported(path) -> bool:
    probe = os.path.join(path, ".xattr-probe")
    open(probe, "w").close()
    try:
        os.setxattr(probe, "user.probe", b"1")
        return True
    except OSError:
        return False
    finally:
        os.unlink(probe)


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "root"
    r.mkdir()
    return r


# --- entry types -------------------------------------------------------------------------


def test_every_entry_type_unprivileged(root):
    layer = (Layer()
             .dir("etc", 0o751)
             .file("etc/hosts", b"127.0.0.1 localhost\n", 0o640)
             .file("empty", b"")
             .symlink("etc/link", "hosts")
             .symlink("abs", "/etc/hosts")
             .hardlink("etc/hosts2", "etc/hosts", 0o640)  # a link header sets the shared inode's mode
             .fifo("pipe", 0o600)
             .file("bin/tool", b"#!/bin/sh\n", 0o755)  # implicit parent
             )
    res = apply(layer.tar(), root)
    assert (root / "etc/hosts").read_bytes() == b"127.0.0.1 localhost\n"
    assert stat.S_IMODE((root / "etc").stat().st_mode) == 0o751
    assert stat.S_IMODE((root / "etc/hosts").stat().st_mode) == 0o640
    assert os.readlink(root / "etc/link") == "hosts"
    assert os.readlink(root / "abs") == "/etc/hosts"
    assert (root / "etc/hosts2").stat().st_ino == (root / "etc/hosts").stat().st_ino
    assert stat.S_ISFIFO((root / "pipe").lstat().st_mode)
    assert stat.S_IMODE((root / "pipe").lstat().st_mode) == 0o600
    assert stat.S_IMODE((root / "bin").stat().st_mode) == 0o755  # implicit parent: 0755
    assert (root / "empty").stat().st_size == 0
    assert res.size == len(layer.tar())


@pytest.mark.root
def test_devices_and_owners(root):
    layer = (Layer(uid=0, gid=0)
             .dir("dev", 0o755)
             .device("dev/null", "char", 1, 3, 0o666)
             .device("dev/loop9", "block", 7, 9, 0o660, gid=6)
             .file("home/u/f", b"x", 0o600, uid=1234, gid=5678)
             .dir("home/u", 0o700, uid=1234, gid=5678)
             .symlink("home/u/l", "f", uid=1234, gid=5678))
    apply(layer.tar(), root)
    st = (root / "dev/null").lstat()
    assert stat.S_ISCHR(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) == (1, 3)
    assert stat.S_IMODE(st.st_mode) == 0o666
    st = (root / "dev/loop9").lstat()
    assert stat.S_ISBLK(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) == (7, 9)
    assert st.st_gid == 6
    for p in ("home/u", "home/u/f", "home/u/l"):
        st = (root / p).lstat()
        assert (st.st_uid, st.st_gid) == (1234, 5678), p


@pytest.mark.root
def test_setuid_kept_after_chown(root):
    layer = (Layer(uid=0, gid=0)
             .file("bin/su", b"ELF", 0o4755, uid=0, gid=0)
             .file("bin/wall", b"ELF", 0o2755, uid=0, gid=5)
             .file("bin/other", b"ELF", 0o6750, uid=1000, gid=1000)
             .dir("tmp", 0o1777))
    apply(layer.tar(), root)
    assert stat.S_IMODE((root / "bin/su").stat().st_mode) == 0o4755
    assert stat.S_IMODE((root / "bin/wall").stat().st_mode) == 0o2755
    st = (root / "bin/other").stat()
    assert stat.S_IMODE(st.st_mode) == 0o6750 and st.st_uid == 1000
    assert stat.S_IMODE((root / "tmp").stat().st_mode) == 0o1777


def test_special_bits_unprivileged(root):
    layer = Layer().file("suid", b"x", 0o4755).file("sgid", b"x", 0o2755).dir("sticky", 0o1777)
    apply(layer.tar(), root)
    assert stat.S_IMODE((root / "suid").stat().st_mode) == 0o4755
    assert stat.S_IMODE((root / "sgid").stat().st_mode) == 0o2755
    assert stat.S_IMODE((root / "sticky").stat().st_mode) == 0o1777


# --- names -------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT])
def test_long_names_and_long_link_names(root, fmt):
    deep = "/".join(["d" * 60] * 5)  # 304 characters
    target = "/".join(["t" * 70] * 3)
    layer = (Layer(format=fmt)
             .file(f"{deep}/{'f' * 200}", b"long")
             .symlink("s", target)
             .hardlink(f"{deep}/hl", f"{deep}/{'f' * 200}"))
    apply(layer.tar(), root)
    assert (root / deep / ("f" * 200)).read_bytes() == b"long"
    assert os.readlink(root / "s") == target
    assert (root / deep / "hl").stat().st_ino == (root / deep / ("f" * 200)).stat().st_ino


def test_non_utf8_and_unicode_names(root):
    layer = Layer().file("caf\u00e9/\u65e5\u672c", b"u").file("raw-\udcff\udcfe", b"r")
    apply(layer.tar(), root)
    assert (root / "caf\u00e9" / "\u65e5\u672c").read_bytes() == b"u"
    assert os.path.exists(os.path.join(os.fsencode(root), b"raw-\xff\xfe"))


def test_dot_slash_names_and_root_entry(root):
    before = os.stat(root)
    layer = Layer().dir("./", 0o700).dir("./a/", 0o750).file("./a/./b", b"b").file("a//c", b"c")
    apply(layer.tar(), root)
    assert stat.S_IMODE(os.stat(root).st_mode) == stat.S_IMODE(before.st_mode)  # root entry ignored
    assert (root / "a/b").read_bytes() == b"b" and (root / "a/c").read_bytes() == b"c"
    assert stat.S_IMODE((root / "a").stat().st_mode) == 0o750


def test_pax_global_headers_are_ignored(root):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT,
                      pax_headers={"path": "evil", "SCHILY.xattr.user.g": "1", "uid": "4242"}) as tf:
        for name in ("a", "b"):
            info = tarfile.TarInfo(name)
            info.size = 1
            info.uid, info.gid = os.getuid(), os.getgid()
            tf.addfile(info, io.BytesIO(b"x"))
    assert buf.getvalue()[156:157] == tarfile.XGLTYPE
    apply(buf.getvalue(), root)
    assert sorted(os.listdir(root)) == ["a", "b"]
    assert "user.g" not in os.listxattr(root / "a")
    assert (root / "b").stat().st_uid == os.getuid()


def test_clean_name():
    assert clean_name("../../evil") == ["evil"]
    assert clean_name("/abs/./x/") == ["abs", "x"]
    assert clean_name("a/../../b/..//c") == ["c"]
    assert clean_name("./") == []


# --- xattrs and times --------------------------------------------------------------------


def test_user_xattrs(root):
    if not user_xattrs_supported(root):
        pytest.skip("filesystem without user xattrs")
    layer = (Layer()
             .dir("d", xattrs={"user.dir": b"dv"})
             .file("d/f", b"x", xattrs={"user.a": b"1", "user.bin": b"\x00\xff\x01binary"})
             .symlink("d/l", "f", xattrs={"user.nope": b"ignored: user xattrs are not allowed on symlinks"}))
    apply(layer.tar(), root)
    assert os.getxattr(root / "d/f", "user.a") == b"1"
    assert os.getxattr(root / "d/f", "user.bin") == b"\x00\xff\x01binary"
    assert os.getxattr(root / "d", "user.dir") == b"dv"


@pytest.mark.root
def test_security_capability_and_trusted_ignored(root):
    cap = bytes.fromhex("0100000200200000000000000000000000000000")  # cap_net_bind_service, v2
    layer = (Layer(uid=0, gid=0)
             .file("ping", b"ELF", 0o755, xattrs={"security.capability": cap})
             .dir("d", xattrs={"trusted.overlay.opaque": b"y", "trusted.overlay.redirect": b"/etc"}))
    apply(layer.tar(), root)
    assert os.getxattr(root / "ping", "security.capability") == cap
    assert "trusted.overlay.opaque" not in os.listxattr(root / "d")
    assert "trusted.overlay.redirect" not in os.listxattr(root / "d")


def test_mtimes_files_dirs_symlinks(root):
    layer = (Layer()
             .dir("d", mtime=1_000_000_000)
             .dir("d/sub", mtime=1_100_000_000)
             .file("d/sub/f", b"x", mtime=1_200_000_000)
             .file("d/g", b"x", mtime=1_300_000_000, pax={"mtime": "1300000000.123456789"})
             .symlink("d/l", "g", mtime=1_400_000_000))
    apply(layer.tar(), root)
    # directory times are set last: the files written into them do not disturb them
    assert (root / "d").stat().st_mtime_ns == 1_000_000_000 * 10**9
    assert (root / "d/sub").stat().st_mtime_ns == 1_100_000_000 * 10**9
    assert (root / "d/sub/f").stat().st_mtime_ns == 1_200_000_000 * 10**9
    assert (root / "d/g").stat().st_mtime_ns == 1_300_000_000_123_456_789
    assert (root / "d/l").lstat().st_mtime_ns == 1_400_000_000 * 10**9


def test_times_out_of_range_become_epoch(root):
    layer = Layer().file("old", b"x", pax={"mtime": "-5"}).file("atime", b"x", pax={"atime": "1700000000"})
    apply(layer.tar(), root)
    assert (root / "old").stat().st_mtime_ns == 0
    st = (root / "atime").stat()
    assert st.st_atime_ns == 1_700_000_000 * 10**9  # atime = max(atime, mtime)


# --- compression, media types, digests ---------------------------------------------------


@pytest.mark.parametrize("codec,media_type", [
    (lambda b: b, None),
    (lambda b: b, "application/vnd.oci.image.layer.v1.tar"),
    (lambda b: b, "application/vnd.docker.image.rootfs.diff.tar"),
    (gz, None),
    (gz, "application/vnd.oci.image.layer.v1.tar+gzip"),
    (gz, "application/vnd.docker.image.rootfs.diff.tar.gzip"),
    (gz, "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"),
    (gz, "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"),
    (gz, "application/vnd.docker.image.rootfs.diff.tar"),  # mislabelled: detected by magic
    (zst, None),
    (zst, "application/vnd.oci.image.layer.v1.tar+zstd"),
    (zst, "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"),
    (zst, "application/vnd.oci.image.layer.v1.tar+gzip"),  # containerd detects by magic too
])
def test_compressions_and_diff_id(root, codec, media_type):
    tar = Layer().dir("a").file("a/b", os.urandom(100_000) + b"z" * 300_000).tar()
    res = apply(codec(tar), root, media_type=media_type)
    assert res.diff_id == sha256(tar)  # over the whole uncompressed stream, padding included
    assert res.size == len(tar)
    assert (root / "a/b").stat().st_size == 400_000


@pytest.mark.parametrize("codec, media_type", [
    (gz, "application/vnd.oci.image.layer.v1.tar"),  # containerd 1.6 fails this one
    (gz, "application/vnd.docker.image.rootfs.diff.tar"),
    (zst, "application/vnd.oci.image.layer.v1.tar+gzip"),
    (zst, "application/vnd.docker.image.rootfs.diff.tar.gzip"),
    (gz, "application/vnd.oci.image.layer.v1.tar+zstd"),
    (lambda t: t, "application/vnd.oci.image.layer.v1.tar+gzip"),
    (lambda t: t, "application/vnd.oci.image.layer.v1.tar+zstd"),
])
def test_mislabelled_layers_are_read_by_their_magic_bytes(root, codec, media_type):
    tar = Layer().file("a", b"x" * 5000).tar()
    res = apply(codec(tar), root, media_type=media_type)
    assert res.diff_id == sha256(tar)
    assert (root / "a").read_bytes() == b"x" * 5000


@pytest.mark.parametrize("media_type", [
    "application/vnd.oci.image.layer.v1.tar+encrypted",
    "application/vnd.oci.image.layer.v1.tar+gzip+encrypted",
    "application/vnd.oci.image.config.v1+json",
    "application/octet-stream",
    "",
])
def test_unknown_media_type(root, media_type):
    with pytest.raises(InvalidArgument, match="unsupported diff media type"):
        apply(Layer().file("a", b"x").tar(), root, media_type=media_type)
    assert list(root.iterdir()) == []


def test_multi_member_gzip_and_multi_frame_zstd(root, tmp_path):
    tar = Layer().file("a", b"A" * 50_000).file("b", os.urandom(50_000)).tar()
    half = len(tar) // 2
    res = apply(gz(tar[:half]) + gz(tar[half:]), root)
    assert res.diff_id == sha256(tar)
    other = tmp_path / "other"
    other.mkdir()
    skippable = (0x184D2A50).to_bytes(4, "little") + (3).to_bytes(4, "little") + b"abc"
    res = apply(skippable + zst(tar[:half]) + skippable + zst(tar[half:]), other)
    assert res.diff_id == sha256(tar)
    assert (other / "a").read_bytes() == b"A" * 50_000


def test_empty_stream_is_an_empty_layer(root):
    assert apply(b"", root).diff_id == sha256(b"")
    assert apply(bytes(1024), root).diff_id == sha256(bytes(1024))
    assert apply(gz(b""), root).diff_id == sha256(b"")


def test_detect_and_media_types():
    assert detect_compression(b"\x1f\x8b\x08\x00") is Compression.GZIP
    assert detect_compression(b"\x28\xb5\x2f\xfd\x00") is Compression.ZSTD
    assert detect_compression((0x184D2A5F).to_bytes(4, "little") + bytes(4)) is Compression.ZSTD
    assert detect_compression(b"ustar") is Compression.UNCOMPRESSED
    assert diff_compression("application/vnd.oci.image.layer.v1.tar") == ""
    assert diff_compression("application/vnd.oci.image.layer.v1.tar+gzip") == "gzip"
    assert diff_compression("application/vnd.oci.image.layer.v1.tar+zstd") == "zstd"
    assert diff_compression("application/vnd.docker.image.rootfs.diff.tar") == "unknown"
    assert diff_compression("application/vnd.docker.image.rootfs.foreign.diff.tar") == "unknown"
    assert diff_compression("application/vnd.docker.image.rootfs.diff.tar.gzip") == "gzip"
    with pytest.raises(InvalidArgument):
        diff_compression("application/vnd.docker.image.rootfs.diff.tar.gzip+encrypted")


def test_compress_stream_roundtrip_and_gzip_header():
    data = os.urandom(10_000) * 20
    for comp in Compression:
        out = io.BytesIO()
        w = compress_stream(out, comp)
        for i in range(0, len(data), 7_000):
            w.write(data[i:i + 7_000])
        w.close()
        reader, found = decompress_stream(io.BytesIO(out.getvalue()))
        assert found is comp and reader.read(-1) == data
    out = io.BytesIO()
    w = compress_stream(out, Compression.GZIP)
    w.write(b"x")
    w.close()
    blob = out.getvalue()
    assert blob[:3] == b"\x1f\x8b\x08" and blob[4:8] == bytes(4)  # no mtime, no name
    assert gzip.decompress(blob) == b"x"


# --- corrupt and truncated streams -------------------------------------------------------


def _big_tar():
    return Layer().file("a", os.urandom(300_000)).file("b", b"b" * 10_000).tar()


@pytest.mark.parametrize("cut", [0.3, 0.9, -20, -1])
def test_truncated_gzip(root, cut):
    blob = gz(_big_tar())
    n = int(len(blob) * cut) if cut > 0 else len(blob) + cut
    with pytest.raises(InvalidArgument, match="gzip"):
        apply(blob[:n], root)


@pytest.mark.parametrize("cut", [0.3, 0.9, -3])
def test_truncated_zstd(root, cut):
    blob = zst(_big_tar())
    n = int(len(blob) * cut) if cut > 0 else len(blob) + cut
    with pytest.raises(InvalidArgument, match="zstd"):
        apply(blob[:n], root)


@pytest.mark.parametrize("n", [100, 512 + 1000, 512 + 300_000 + 100, 512 + 300_224 + 200])
def test_truncated_plain_tar(root, n):
    # inside the first header, inside data, inside the second header
    with pytest.raises(InvalidArgument, match="truncated|unexpected end"):
        apply(_big_tar()[:n], root)


def test_truncated_right_after_pax_header(root):
    tar = Layer().file("x" * 200, b"data").tar()
    # the PAX header (512 + 512 bytes) alone, without the entry it describes
    with pytest.raises(InvalidArgument):
        apply(tar[:1024], root)


def test_corrupt_gzip_crc_and_trailing_garbage(root, tmp_path):
    blob = bytearray(gz(_big_tar()))
    blob[-6] ^= 0xFF  # CRC32
    with pytest.raises(InvalidArgument, match="gzip"):
        apply(bytes(blob), root)
    other = tmp_path / "o"
    other.mkdir()
    with pytest.raises(InvalidArgument, match="gzip"):
        apply(gz(_big_tar()) + b"garbage!", other)


def test_corrupt_tar_checksum(root):
    tar = bytearray(Layer().file("a", b"a").file("b", b"b").tar())
    tar[1024 + 10] ^= 0x55  # the second header's name: its checksum no longer matches
    with pytest.raises(InvalidArgument, match="corrupt tar"):
        apply(bytes(tar), root)
    first = bytearray(Layer().file("a", b"a").tar())
    first[0] ^= 0x55
    with pytest.raises(InvalidArgument):
        apply(bytes(first), root)


def test_zero_block_then_data(root):
    tar = Layer().file("a", b"a").tar()
    bad = tar[:1024] + bytes(512) + tar[:512] + bytes(1024)
    with pytest.raises(InvalidArgument):
        apply(bad, root)


def test_unknown_entry_type(root):
    info = tarfile.TarInfo("weird")
    info.type = b"Z"
    tar = Layer().add(info).tar()
    with pytest.raises(InvalidArgument, match="unhandled tar header type"):
        apply(tar, root)


def test_source_errors_are_not_invalid_argument(root):
    class Broken(io.RawIOBase):
        def __init__(self, data):
            self._data = io.BytesIO(data)
            self._n = 0

        def readable(self):
            return True

        def read(self, n=-1):
            self._n += 1
            if self._n > 2:
                raise OSError(errno.EIO, "disk on fire")
            return self._data.read(min(n, 4096) if n and n > 0 else 4096)

    with pytest.raises(OSError, match="disk on fire") as info:
        apply_layer(Broken(gz(_big_tar())), root, overlay_whiteouts=False)
    assert not isinstance(info.value, InvalidArgument)


# --- replacing existing paths ------------------------------------------------------------


def test_replacement_semantics(root):
    apply(Layer()
          .dir("dir_over_dir", 0o700).file("dir_over_dir/lower", b"l")
          .dir("file_over_dir").file("file_over_dir/x", b"x")
          .file("dir_over_file", b"f")
          .file("link_over_file", b"f")
          .symlink("file_over_link", "target")
          .file("target", b"lower target")
          .tar(), root)
    apply(Layer()
          .dir("dir_over_dir", 0o755).file("dir_over_dir/upper", b"u")
          .file("file_over_dir", b"now a file")
          .dir("dir_over_file", 0o750)
          .symlink("link_over_file", "/elsewhere")
          .file("file_over_link", b"replaced, not written through")
          .tar(), root)
    assert sorted(os.listdir(root / "dir_over_dir")) == ["lower", "upper"]  # merged
    assert stat.S_IMODE((root / "dir_over_dir").stat().st_mode) == 0o755  # metadata replaced
    assert (root / "file_over_dir").read_bytes() == b"now a file"
    assert (root / "dir_over_file").is_dir()
    assert os.readlink(root / "link_over_file") == "/elsewhere"
    assert not (root / "file_over_link").is_symlink()
    assert (root / "file_over_link").read_bytes() == b"replaced, not written through"
    assert (root / "target").read_bytes() == b"lower target"


def test_rewriting_a_hardlinked_name_does_not_touch_the_other(root):
    apply(Layer().file("a", b"original").hardlink("b", "a").file("b", b"new b").tar(), root)
    assert (root / "a").read_bytes() == b"original"
    assert (root / "b").read_bytes() == b"new b"


def test_parent_not_a_directory(root):
    with pytest.raises(InvalidArgument, match="not a directory"):
        apply(Layer().file("f", b"x").file("f/g", b"y").tar(), root)


def test_hardlink_target_missing_or_directory(root):
    with pytest.raises(InvalidArgument, match="not found|No such file"):
        apply(Layer().hardlink("h", "missing").tar(), root)
    with pytest.raises(InvalidArgument):
        apply(Layer().dir("d").hardlink("h2", "d").tar(), root)


def test_remove_all_deep_and_wide(tmp_path):
    top = tmp_path / "top"
    top.mkdir()
    p = top
    for i in range(1200):  # deeper than Python's recursion limit
        p = p / "d"
        p.mkdir()
    (p / "leaf").write_text("x")
    os.symlink(tmp_path / "outside", top / "d" / "link")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "keep").write_text("keep")
    for i in range(300):
        (top / f"f{i}").write_text("x")
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        remove_all(fd, "top")
    finally:
        os.close(fd)
    assert not top.exists()
    assert (tmp_path / "outside" / "keep").read_text() == "keep"


# --- whiteouts ---------------------------------------------------------------------------


def _lower(root):
    apply(Layer()
          .dir("etc").file("etc/passwd", b"root").file("etc/group", b"g")
          .dir("usr/share/doc").file("usr/share/doc/a", b"a").dir("usr/share/doc/sub").file("usr/share/doc/sub/b", b"b")
          .dir("var").file("var/x", b"x")
          .tar(), root)


def test_whiteouts_plain(root):
    _lower(root)
    apply(Layer()
          .whiteout("etc/group")
          .whiteout("var")  # a whole directory
          .whiteout("nonexistent")
          .file("etc/new", b"n")
          .tar(), root)
    assert sorted(os.listdir(root / "etc")) == ["new", "passwd"]
    assert not (root / "var").exists()
    assert not any(n.startswith(".wh.") for _, ds, fs in os.walk(root) for n in ds + fs)


@pytest.mark.parametrize("marker_first", [True, False])
def test_opaque_plain(root, marker_first):
    _lower(root)
    layer = Layer()
    if marker_first:
        layer.opaque("usr/share/doc")
    layer.dir("usr/share/doc").file("usr/share/doc/new", b"n").dir("usr/share/doc/sub").file("usr/share/doc/sub/c", b"c")
    if not marker_first:
        layer.opaque("usr/share/doc")
    apply(layer.tar(), root)
    got = sorted(os.path.relpath(os.path.join(d, n), root / "usr/share/doc")
                 for d, ds, fs in os.walk(root / "usr/share/doc") for n in ds + fs)
    assert got == ["new", "sub", "sub/c"]  # lower a and sub/b gone, this layer's entries kept


def test_opaque_keeps_implicit_parents_of_this_layer(root):
    _lower(root)
    # no entry for usr/share/doc/sub itself: it is only an implicit parent here
    apply(Layer().file("usr/share/doc/sub/c", b"c").opaque("usr/share/doc").tar(), root)
    assert sorted(os.listdir(root / "usr/share/doc")) == ["sub"]
    assert sorted(os.listdir(root / "usr/share/doc/sub")) == ["c"]


def test_whiteout_never_removes_same_layer_content(root):
    _lower(root)
    apply(Layer()
          .file("etc/passwd", b"new passwd").whiteout("etc/passwd")
          .dir("usr/share/doc").file("usr/share/doc/mine", b"m").whiteout("usr/share/doc")
          .tar(), root)
    assert (root / "etc/passwd").read_bytes() == b"new passwd"
    # the lower directory is gone, this layer's directory and content remain
    assert sorted(os.listdir(root / "usr/share/doc")) == ["mine"]


@pytest.mark.parametrize("name", [".wh.", ".wh..", "a/.wh..", "a/.wh...", ".wh..."])
def test_invalid_whiteout_names(root, name):
    with pytest.raises(InvalidArgument, match="invalid whiteout"):
        apply(Layer().dir("a").file(name, b"").tar(), root)


@pytest.mark.root
def test_whiteouts_and_opaque_overlay(root):
    apply(Layer(uid=0, gid=0)
          .whiteout("etc/group")
          .opaque("usr/share/doc")
          .file("usr/share/doc/new", b"n")
          .file("etc/kept", b"k")
          .file("mine", b"m").whiteout("mine")
          .tar(), root, overlay=True)
    st = (root / "etc/group").lstat()
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0 and (st.st_uid, st.st_gid) == (0, 0)
    assert os.getxattr(root / "usr/share/doc", "trusted.overlay.opaque") == b"y"
    assert (root / "usr/share/doc/new").read_bytes() == b"n"
    assert (root / "mine").read_bytes() == b"m"  # same-layer whiteout ignored
    assert not any(n.startswith(".wh.") for _, ds, fs in os.walk(root) for n in ds + fs)


@pytest.mark.root
def test_implicit_parents_copy_lower_dir_info(tmp_path):
    lower = tmp_path / "lower"
    upper = tmp_path / "upper"
    lower.mkdir()
    upper.mkdir()
    apply(Layer(uid=0, gid=0).dir("tmp", 0o1777, uid=0, gid=0, mtime=1_234_567_890).tar(), lower, overlay=True)
    os.setxattr(lower / "tmp", "user.k", b"v")
    apply(Layer(uid=0, gid=0).file("tmp/x", b"x").tar(), upper, overlay=True, parents=[lower])
    st = (upper / "tmp").stat()
    assert stat.S_IMODE(st.st_mode) == 0o1777
    assert os.getxattr(upper / "tmp", "user.k") == b"v"


# --- durability --------------------------------------------------------------------------


def test_sync_flag_and_no_leaked_fds_or_threads(root):
    fds_before = set(os.listdir("/proc/self/fd"))
    threads_before = threading.active_count()
    layer = Layer()
    for i in range(200):
        layer.file(f"d{i % 7}/sub{i % 3}/f{i}", b"x")
    apply(layer.tar(), root, sync=True)
    try:
        apply(Layer().file("f", b"x").file("f/g", b"y").tar(), root, sync=False)
    except InvalidArgument:
        pass
    # an error in the middle of a big layer: the reader thread is stopped and joined
    big = Layer().file("f", b"x").file("f/g", b"y")
    for i in range(2000):
        big.file(f"later/{i}", os.urandom(1000))
    with pytest.raises(InvalidArgument):
        apply(gz(big.tar()), root)
    (root / "other").mkdir()
    with pytest.raises(InvalidArgument):
        apply(gz(big.tar()[2048:])[:-100], root / "other")  # truncated after many entries
    assert set(os.listdir("/proc/self/fd")) == fds_before
    assert threading.active_count() == threads_before


# --- write_diff --------------------------------------------------------------------------


def _populate_pair(tmp_path, xattrs: bool):
    lower = tmp_path / "lower"
    (lower / "etc").mkdir(parents=True)
    (lower / "etc/passwd").write_text("root:x:0:0")
    (lower / "etc/group").write_text("root:x:0")
    (lower / "usr/share/doc/pkg").mkdir(parents=True)
    (lower / "usr/share/doc/pkg/README").write_text("readme")
    (lower / "usr/bin").mkdir(parents=True)
    (lower / "usr/bin/tool").write_text("v1")
    os.link(lower / "usr/bin/tool", lower / "usr/bin/tool-alias")
    (lower / "var/log").mkdir(parents=True)
    (lower / "var/log/old").write_text("old log")
    (lower / "data").write_text("will become a dir")
    os.symlink("passwd", lower / "etc/pw")
    (lower / "shared").write_text("shared, unmodified")
    for dirpath, dirnames, filenames in os.walk(lower):
        for n in dirnames + filenames:
            os.utime(os.path.join(dirpath, n), (1_500_000_000, 1_500_000_000), follow_symlinks=False)
    os.utime(lower, (1_500_000_000, 1_500_000_000))
    upper = tmp_path / "upper"
    subprocess.run(["cp", "-a", str(lower), str(upper)], check=True)
    # changes
    (upper / "etc/group").unlink()
    (upper / "etc/passwd").write_text("root:x:0:0\nuser:x:1000:1000")
    (upper / "etc/new.d").mkdir()
    (upper / "etc/new.d/conf").write_text("conf")
    os.chmod(upper / "etc/new.d/conf", 0o4711)
    shutil.rmtree(upper / "usr/share/doc")
    shutil.rmtree(upper / "var/log")
    (upper / "var/log").write_text("now a file")
    (upper / "data").unlink()
    (upper / "data").mkdir()
    (upper / "data/inside").write_text("i")
    os.unlink(upper / "etc/pw")
    os.symlink("group", upper / "etc/pw")
    (upper / "new").write_text("new file")
    os.link(upper / "new", upper / "new-link")
    os.link(upper / "shared", upper / "etc/shared-link")  # links an unmodified lower file
    os.mkfifo(upper / "fifo")
    (upper / "usr/bin/tool").write_text("v2")  # both names of the hardlink change
    (upper / "caf\u00e9-\udcff").write_text("non-UTF-8 and non-ASCII name")
    (upper / ("long-" + "n" * 150)).mkdir()
    os.symlink("t" * 300, upper / ("long-" + "n" * 150) / ("l" * 200))
    if xattrs:
        os.setxattr(upper / "new", "user.attr", b"\x00\x01v")
        os.setxattr(upper / "etc/passwd", "user.x", b"1")
    return lower, upper


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none", Compression.GZIP,
                                         "application/vnd.oci.image.layer.v1.tar+zstd"])
def test_write_diff_roundtrip(tmp_path, compression):
    lower, upper = _populate_pair(tmp_path, xattrs=user_xattrs_supported(tmp_path))
    blob = io.BytesIO()
    res = write_diff(lower, upper, blob, compression)
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(lower), str(copy)], check=True)
    applied = apply_layer(io.BytesIO(blob.getvalue()), copy, overlay_whiteouts=False)
    assert applied.diff_id == res.diff_id
    assert res.digest == sha256(blob.getvalue()) and res.size == len(blob.getvalue())
    want, got = tree(upper), tree(copy)
    assert want == got, tree_diff(want, got)


def test_write_diff_deterministic_and_minimal(tmp_path):
    lower, upper = _populate_pair(tmp_path, xattrs=False)
    a, b = io.BytesIO(), io.BytesIO()
    ra = write_diff(lower, upper, a, "gzip")
    rb = write_diff(lower, upper, b, "gzip")
    assert a.getvalue() == b.getvalue() and ra == rb
    names = [m.name for m in tarfile.open(fileobj=io.BytesIO(a.getvalue()), mode="r:gz")]
    assert "usr/share/.wh.doc" in names and not any(n.startswith("usr/share/doc/") for n in names)
    assert "etc/.wh.group" in names and "var/log" in names
    assert "usr/bin/tool" in names and "usr/bin/tool-alias" in names
    assert "etc/passwd" in names and "etc/pw" in names
    assert "etc/shared-link" in names and "shared" in names
    assert "usr/share/doc/pkg/README" not in names
    # parents are written before their children
    assert names.index("etc") < names.index("etc/passwd")
    assert len(names) == len(set(names))


def test_write_diff_empty_lower_and_identical(tmp_path):
    lower, upper = _populate_pair(tmp_path, xattrs=False)
    out = io.BytesIO()
    res = write_diff(None, lower, out, "none")
    target = tmp_path / "t"
    target.mkdir()
    apply(out.getvalue(), target)
    assert tree(lower, dir_mtimes=False) == tree(target, dir_mtimes=False)
    same = io.BytesIO()
    res = write_diff(lower, lower, same, "none")
    assert same.getvalue() == bytes(1024) and res.uncompressed_size == 1024


def test_write_diff_unsupported_compression(tmp_path):
    upper = tmp_path / "upper"
    upper.mkdir()
    (upper / "f").write_text("x")
    for bad in ("application/vnd.oci.image.layer.v1.tar+encrypted", "lz4"):
        with pytest.raises(InvalidArgument):
            write_diff(None, upper, io.BytesIO(), bad)


@pytest.mark.root
@pytest.mark.parametrize("with_dir_entry", [True, False])
def test_overlay_whiteout_then_recreate_is_opaque(root, with_dir_entry):
    layer = Layer(uid=0, gid=0).whiteout("var")
    if with_dir_entry:
        layer.dir("var", 0o755)
    layer.file("var/new", b"n")
    apply(layer.tar(), root, overlay=True)
    assert (root / "var").is_dir()
    assert os.getxattr(root / "var", "trusted.overlay.opaque") == b"y"
    assert os.listdir(root / "var") == ["new"]


def test_plain_whiteout_then_recreate(root):
    _lower(root)
    apply(Layer().whiteout("var").dir("var", 0o700).file("var/new", b"n").tar(), root)
    assert os.listdir(root / "var") == ["new"]
    assert stat.S_IMODE((root / "var").stat().st_mode) == 0o700
