"""Where a layer's tar may end: Go's ``archive/tar`` rules (what containerd accepts).

``umoci insert`` writes layers that stop right after the last file's data: no padding to
512 bytes, no end-of-archive blocks. Go reads them to the end, Python's ``tarfile`` does
not. The layers here are cut from one written by Python's tarfile at each boundary.
"""

from __future__ import annotations

import io
import tarfile

import pytest

from pycontainerd.archive import apply_layer
from pycontainerd.archive.tarstream import next_member
from pycontainerd.errdefs import InvalidArgument
from tests.support.layers import Layer, gz, sha256, zst

A = b"a" * 1000  # 2 blocks, 24 bytes of padding
B = b"b" * 700  # 2 blocks, 324 bytes of padding


def _layer() -> tuple[bytes, int]:
    """A full tar (d/, d/a, d/b, EOF blocks) and the offset where d/b's data ends."""
    tar = Layer().dir("d").file("d/a", A).file("d/b", B).tar()
    tf = tarfile.open(fileobj=io.BytesIO(tar))
    last = tf.getmembers()[-1]
    assert last.name == "d/b"
    return tar, last.offset_data + last.size


def _apply(data: bytes, root):
    root.mkdir()
    return apply_layer(io.BytesIO(data), root, overlay_whiteouts=False)


def _check_tree(root) -> None:
    assert (root / "d/a").read_bytes() == A
    assert (root / "d/b").read_bytes() == B


@pytest.mark.parametrize("cut", [
    pytest.param(0, id="right-after-data"),
    pytest.param(1, id="one-byte-of-padding"),
    pytest.param(323, id="padding-cut-short"),
    pytest.param(324, id="padding-whole-no-eof-blocks"),
    pytest.param(324 + 512, id="one-zero-block"),
    pytest.param(324 + 1024, id="two-zero-blocks"),
])
def test_ends_at_an_entry_boundary(tmp_path, cut):
    tar, end = _layer()
    data = tar[:end + cut]
    res = _apply(data, tmp_path / "r")
    _check_tree(tmp_path / "r")
    assert res.diff_id == sha256(data) and res.size == len(data)


@pytest.mark.parametrize("codec", [gz, zst])
def test_unpadded_compressed(tmp_path, codec):
    tar, end = _layer()
    res = _apply(codec(tar[:end]), tmp_path / "r")
    _check_tree(tmp_path / "r")
    assert res.diff_id == sha256(tar[:end])


@pytest.mark.parametrize("where", [
    pytest.param(lambda end: end - 1, id="in-last-data"),
    pytest.param(lambda end: end - 700 - 512 - 24 - 500, id="in-first-data"),
    pytest.param(lambda end: end - 700 - 100, id="in-last-header"),
    pytest.param(lambda end: end + 324 + 100, id="in-a-header-after-padding"),
    pytest.param(lambda end: end + 324 + 512 + 100, id="zero-block-then-part-of-a-block"),
])
def test_cut_short_is_still_corrupt(tmp_path, where):
    tar, end = _layer()
    with pytest.raises(InvalidArgument, match="truncated|unexpected end|corrupt"):
        _apply(tar[:where(end)], tmp_path / "r")


def test_unpadded_file_whose_data_fills_its_blocks(tmp_path):
    tar = Layer().file("x", b"x" * 1024).tar()
    res = _apply(tar[:512 + 1024], tmp_path / "r")
    assert (tmp_path / "r/x").read_bytes() == b"x" * 1024
    assert res.size == 1536


def test_unpadded_file_in_the_middle_is_corrupt(tmp_path):
    """Only the *end* may lack padding: a header right after unpadded data is misread."""
    tar, end = _layer()
    first = tarfile.open(fileobj=io.BytesIO(tar)).getmembers()[1]
    a_end = first.offset_data + first.size
    spliced = tar[:a_end] + tar[a_end + 24:]  # d/a's padding dropped, d/b follows at once
    with pytest.raises(InvalidArgument):
        _apply(spliced, tmp_path / "r")


def test_next_member_skips_unread_data_strictly():
    """``next_member`` for callers that do not read every entry (image import)."""
    tar, end = _layer()
    tf = tarfile.open(fileobj=io.BytesIO(tar[:end]), mode="r|")
    names, m = [], None
    while (m := next_member(tf, m)) is not None:
        names.append(m.name)
    assert names == ["d", "d/a", "d/b"]
    tf = tarfile.open(fileobj=io.BytesIO(tar[:end - 1]), mode="r|")
    m = None
    with pytest.raises(InvalidArgument, match='unexpected end of data in "d/b"'):
        while (m := next_member(tf, m)) is not None:
            pass
