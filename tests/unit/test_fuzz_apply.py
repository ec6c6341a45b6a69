"""Fuzzing layer apply with hostile tars: headers, bytes and compression.

``test_archive_hostile.py`` has the classic escapes and a property test over names and
symlink targets. This file widens the input space and reuses its arena (a canary dir
beside the apply root, checked stat-for-stat and byte-for-byte afterwards):

- random header fields: every tar type flag (devices and fifos too when root), pax
  records (``path``, ``linkpath``, ``size``, ids, times, xattrs, GNU sparse) with hostile
  values, names of 0..5000 bytes, the three tar formats;
- byte-level mutations of such tars (overwrite, truncate, insert, checksum fixed up or not);
- compression: gzip and zstd streams cut short, bit-flipped, or garbage behind the magic.

The only acceptable outcomes are success with everything inside the root, or one of our
typed errors (:class:`~pycontainerd.errdefs.ContainerdError`; InvalidArgument in practice).
Any other exception fails. ``FUZZ_EXAMPLES=N`` sets the examples per test (CI keeps the
defaults, a few seconds per test).
"""

from __future__ import annotations

import copy
import io
import os
import subprocess
import tarfile

import pytest

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pycontainerd.archive import apply_layer
from pycontainerd.archive.compression import MEDIA_TYPE_LAYER_GZIP, MEDIA_TYPE_LAYER_ZSTD
from pycontainerd.errdefs import ContainerdError
from tests.support.layers import Layer, gz, zst
from tests.unit.test_archive_hostile import COMPONENTS, TARGETS, arena


def fuzz_settings(default: int):
    n = int(os.environ.get("FUZZ_EXAMPLES", "0") or 0)
    return settings(max_examples=n or default, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


ROOT = os.geteuid() == 0

TYPES = [tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.LNKTYPE, tarfile.SYMTYPE, tarfile.DIRTYPE,
         tarfile.CONTTYPE, b"x", b"g", b"L", b"K", b"S", b"V", b"M", b"Z", b"\xff"]
if ROOT:  # mknod needs CAP_MKNOD; unprivileged runs get the rest
    TYPES += [tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE]

HOSTILE_COMPONENTS = COMPONENTS + ["a" * 255, "b" * 256, "\udcff", "é", " ", "\\", "..."]


def _name():
    comps = st.lists(st.sampled_from(HOSTILE_COMPONENTS), min_size=1, max_size=6)
    joined = st.builds(lambda lead, cs: ("/" if lead else "") + "/".join(cs), st.booleans(), comps)
    # deep paths, up to just under PATH_MAX with the arena's prefix: the canary check
    # lstat()s full paths, and Python 3.11's os.walk/rmtree recurse once per level
    # (test_deep_layer_is_removable goes 1,500 deep)
    deep = st.integers(1, 120).map(lambda n: "/".join(["d" * 30] * n))
    return st.one_of(joined, joined, joined, deep)


def _target():
    """Link targets; ``OUT`` stands for the canary dir and is replaced when the tar is
    written (the arena's path must not steer the draws: hypothesis replays them)."""
    return st.lists(st.sampled_from(TARGETS + ["/etc/passwd", "/proc/self/root", "a" * 5000]),
                    min_size=1, max_size=3).map("/".join)


NUMBERS = st.sampled_from(["0", "-1", "1e9", "NaN", "", " ", "9" * 40, "18446744073709551616", "1.5",
                           "-9223372036854775809", "0x10", "1.999999999999999999", "\x00"])
PAX_KEYS = ["path", "linkpath", "size", "uid", "gid", "uname", "gname", "mtime", "atime", "ctime",
            "SCHILY.xattr.user.x", "SCHILY.xattr.security.capability", "SCHILY.xattr.trusted.overlay.opaque",
            "SCHILY.xattr.", "LIBARCHIVE.xattr.user.y", "GNU.sparse.size", "GNU.sparse.map",
            "GNU.sparse.major", "GNU.sparse.name", "comment", "hdrcharset"]


@st.composite
def entries(draw):
    n = draw(st.integers(1, 8))
    out = []
    for _ in range(n):
        info = tarfile.TarInfo(draw(_name()))
        info.type = draw(st.sampled_from(TYPES))
        info.mode = draw(st.integers(0, 0o7777))
        info.uid = draw(st.sampled_from([os.getuid(), 0, 65534, 2**21 - 1, 2**31]))
        info.gid = draw(st.sampled_from([os.getgid(), 0, 65534, 2**21 - 1]))
        info.mtime = draw(st.sampled_from([0, 1_600_000_000, -1, 2**33, 2**40]))
        info.linkname = draw(_target()) if info.type in (tarfile.LNKTYPE, tarfile.SYMTYPE) or draw(
            st.booleans()) else ""
        info.devmajor = draw(st.sampled_from([0, 1, 7, 4095]))
        info.devminor = draw(st.sampled_from([0, 3, 255, 2**20 - 1]))
        pax = {}
        for key in draw(st.lists(st.sampled_from(PAX_KEYS), max_size=3)):
            if key in ("path", "linkpath"):
                pax[key] = draw(st.one_of(_name(), _target()))
            elif key.startswith(("SCHILY", "LIBARCHIVE")):
                pax[key] = draw(st.text(max_size=20))
            else:
                pax[key] = draw(NUMBERS)
        info.pax_headers = pax
        data = draw(st.binary(max_size=64)) if info.type in (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE) else b""
        out.append((info, data))
    fmt = draw(st.sampled_from([tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT]))
    return fmt, out


def write_tar(fmt: int, members, outside: str = "/nonexistent-outside") -> bytes | None:
    """The tar, or None when Python's writer itself refuses the header (too long for
    ustar, a number it cannot encode): such an example says nothing about the reader."""
    buf = io.BytesIO()
    try:
        with tarfile.open(fileobj=buf, mode="w", format=fmt, encoding="utf-8", errors="surrogateescape") as tf:
            for info, data in members:
                info = copy.copy(info)
                info.pax_headers = {k: v.replace("OUT", outside) for k, v in info.pax_headers.items()}
                info.linkname = info.linkname.replace("OUT", outside)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data) if data else None)
    except (ValueError, UnicodeError, OverflowError):
        return None
    return buf.getvalue()


def apply_contained(layer: bytes, root: str, overlay: bool = False, media_type: str | None = None) -> bool:
    """Apply; True on success, False on a typed error. Anything else propagates (a finding)."""
    try:
        apply_layer(io.BytesIO(layer), root, overlay_whiteouts=overlay, media_type=media_type, sync=False)
        return True
    except ContainerdError:
        return False


# --- random headers -------------------------------------------------------------------------------


@fuzz_settings(80)
@given(st.data())
def test_fuzz_random_headers(data):
    with arena() as (root, outside, check):
        fmt, members = data.draw(entries())
        overlay = ROOT and data.draw(st.booleans())
        layer = write_tar(fmt, members, outside)
        if layer is None:
            return
        apply_contained(layer, root, overlay=overlay)
        check()


# --- byte mutations -------------------------------------------------------------------------------


def _fix_checksums(buf: bytearray) -> None:
    """Recompute the checksum of every 512-byte block that looks like a header, so that a
    mutation gets past the checksum test and into the header's fields."""
    for off in range(0, len(buf) - 511, 512):
        block = buf[off:off + 512]
        if block[257:262] not in (b"ustar",):
            continue
        block[148:156] = b" " * 8
        chk = sum(block)
        buf[off + 148:off + 156] = b"%06o\x00 " % chk


@st.composite
def mutated(draw):
    fmt, members = draw(entries())
    layer = write_tar(fmt, members)  # OUT → a fixed path: lengths (so draws) must not vary
    assume(layer is not None)
    buf = bytearray(layer)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["set", "truncate", "insert", "zero-header-field"]))
        pos = draw(st.integers(0, max(0, len(buf) - 1)))
        if op == "set" and buf:
            buf[pos] = draw(st.integers(0, 255))
        elif op == "truncate":
            del buf[pos:]
        elif op == "insert":
            buf[pos:pos] = draw(st.binary(min_size=1, max_size=600))
        elif buf:
            # one numeric field of the header at this block: size, mode, uid, gid, mtime
            start = pos - pos % 512 + draw(st.sampled_from([100, 108, 116, 124, 136, 329, 337]))
            width = 12 if start % 512 in (124, 136) else 8
            buf[start:start + width] = draw(st.sampled_from([b"\x80" + b"\xff" * (width - 1),
                                                            b"\xff" * width, b"7" * width, b" " * width,
                                                            b"-1" + b"\x00" * (width - 2)]))[:width]
    if draw(st.booleans()):
        _fix_checksums(buf)
    return bytes(buf)


@fuzz_settings(80)
@given(st.data())
def test_fuzz_mutated_tar_bytes(data):
    with arena() as (root, outside, check):
        apply_contained(data.draw(mutated()), root)
        check()


# --- compression ----------------------------------------------------------------------------------


def _valid_layer() -> bytes:
    # no absolute path of the arena in it: the blob (so the draws over it) must not vary
    return (Layer().dir("a").file("a/f", b"x" * 3000).symlink("l", "../outside").file("l/victim", b"pwn")
            .symlink("e", "/etc").file("e/passwd", b"pwn").hardlink("h", "a/f").file(".wh.nothing").tar())


@st.composite
def compressed(draw):
    kind = draw(st.sampled_from(["gzip", "zstd"]))
    blob = bytearray(gz(_valid_layer()) if kind == "gzip" else zst(_valid_layer()))
    op = draw(st.sampled_from(["truncate", "flip", "garbage", "trailing", "concat"]))
    if op == "truncate":
        del blob[draw(st.integers(0, len(blob) - 1)):]
    elif op == "flip":
        for _ in range(draw(st.integers(1, 8))):
            i = draw(st.integers(0, len(blob) - 1))
            blob[i] ^= 1 << draw(st.integers(0, 7))
    elif op == "garbage":
        head = 10 if kind == "gzip" else 4
        blob = blob[:head] + bytearray(draw(st.binary(min_size=0, max_size=2000)))
    elif op == "trailing":
        blob += draw(st.binary(min_size=1, max_size=100))
    else:  # a second member/frame holding random tar bytes
        more = draw(st.binary(max_size=1500))
        blob += gz(more) if kind == "gzip" else zst(more)
    media_type = draw(st.sampled_from([None, MEDIA_TYPE_LAYER_GZIP if kind == "gzip" else MEDIA_TYPE_LAYER_ZSTD]))
    return bytes(blob), media_type


@fuzz_settings(60)
@given(st.data())
def test_fuzz_corrupt_compression(data):
    with arena() as (root, outside, check):
        blob, media_type = data.draw(compressed())
        apply_contained(blob, root, media_type=media_type)
        check()


@fuzz_settings(60)
@given(st.binary(max_size=4096), st.sampled_from([None, MEDIA_TYPE_LAYER_GZIP, MEDIA_TYPE_LAYER_ZSTD,
                                                   "application/vnd.oci.image.layer.v1.tar", "text/plain"]))
def test_fuzz_arbitrary_bytes(blob, media_type):
    with arena() as (root, outside, check):
        apply_contained(blob, root, media_type=media_type)
        check()


def test_huge_declared_sizes_fail_cleanly():
    """A pax header claiming a terabyte, a GNU long name header claiming gigabytes: a typed
    error, without reading or allocating what the header claims."""
    with arena() as (root, outside, check):
        info = tarfile.TarInfo("big")
        info.size = 0
        info.pax_headers = {"size": str(1 << 40)}
        layer = write_tar(tarfile.PAX_FORMAT, [(info, b"")])
        assert layer is not None
        assert not apply_contained(layer, root)
        check()
        # a GNU 'L' (long name) header declaring 2 GiB of name, with 512 bytes behind it
        hdr = tarfile.TarInfo("././@LongLink")
        hdr.type = b"L"
        hdr.size = 2 << 30
        block = bytearray(hdr.tobuf(tarfile.GNU_FORMAT))
        assert not apply_contained(bytes(block) + b"n" * 512, root)
        check()


def test_deep_layer_is_removable(tmp_path):
    """Finding of the fuzzer: a 10 KiB layer nesting 1,500 directories applied fine but its
    snapshot could not be removed (Python 3.11's ``shutil.rmtree`` recursed past the
    interpreter's limit: RecursionError). The snapshotters' remover now finishes the job."""
    from pycontainerd.snapshots.base import _remove_tree

    deep = "/".join(["d"] * 1500)
    layer = Layer().dir(deep).file(deep + "/f", b"x").symlink("l", str(tmp_path)).tar()
    (tmp_path / "fs").mkdir()
    assert apply_contained(layer, str(tmp_path / "fs"))
    _remove_tree(tmp_path / "fs")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("fmt", ["gnu", "posix-0.0", "posix-0.1", "posix-1.0"])
def test_sparse_file_keeps_its_holes(tmp_path, fmt):
    """Finding of the fuzzer (it filled this machine's disk): a pax header saying
    ``GNU.sparse.size=<huge>`` made apply write that many zero bytes. Holes now stay
    holes, as with containerd: a 1 TiB sparse file from GNU tar applies in a few blocks."""
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "big", "wb") as f:
        f.truncate(1 << 40)
        f.seek(1_000_000)
        f.write(b"hello")
        f.seek(1 << 39)
        f.write(b"tail")
    kind, _, version = fmt.partition("-")
    argv = ["tar", "--sparse", f"--format={'posix' if kind == 'posix' else 'gnu'}", "-C", str(src), "-cf",
            str(tmp_path / "l.tar"), "big"]
    if version:
        argv.insert(2, f"--sparse-version={version}")
    subprocess.run(argv, check=True)
    (tmp_path / "fs").mkdir()
    assert apply_contained((tmp_path / "l.tar").read_bytes(), str(tmp_path / "fs"))
    out = tmp_path / "fs" / "big"
    st_ = os.stat(out)
    assert st_.st_size == 1 << 40
    assert st_.st_blocks * 512 < 1 << 20
    with open(out, "rb") as f:
        f.seek(1_000_000 - 3)
        assert f.read(10) == b"\0\0\0hello\0\0"
        f.seek(1 << 39)
        assert f.read(4) == b"tail"


def test_sparse_map_out_of_range_is_invalid(tmp_path):
    info = tarfile.TarInfo("s")
    info.pax_headers = {"GNU.sparse.major": "0", "GNU.sparse.minor": "1", "GNU.sparse.name": "s",
                        "GNU.sparse.realsize": "10", "GNU.sparse.map": "20,5"}
    layer = write_tar(tarfile.PAX_FORMAT, [(info, b"abcde")])
    (tmp_path / "fs").mkdir()
    assert not apply_contained(layer, str(tmp_path / "fs"))


@pytest.mark.parametrize("pax", [{"uid": str(1 << 33)}, {"gid": "18446744073709551616"}, {"uid": "-2"}])
def test_owner_out_of_range_is_invalid(tmp_path, pax):
    """Finding of the fuzzer: a pax ``uid``/``gid`` past 32 bits escaped apply as
    OverflowError from chown."""
    info = tarfile.TarInfo("f")
    info.pax_headers = pax
    layer = write_tar(tarfile.PAX_FORMAT, [(info, b"x")])
    (tmp_path / "fs").mkdir()
    assert not apply_contained(layer, str(tmp_path / "fs"))
