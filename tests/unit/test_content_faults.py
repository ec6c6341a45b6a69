"""Faults of the content store (issue 9): a full disk while writing is RESOURCE_EXHAUSTED,
not an unknown error, and the ingest stays consistent (``/dev/full`` stands in for the
disk: every write to it fails with ``ENOSPC``; the end-to-end case, a daemon on a small
tmpfs, is ``tests/reliability/test_disk_full.py``); an ingest a crash left half-made is
removed when the store opens again."""

from __future__ import annotations

import os

import pytest

from pycontainerd.content.ingest import disk_full_is_exhausted
from pycontainerd.content.local import LocalStore
from pycontainerd.errdefs import ResourceExhausted
from pycontainerd.wire.errors import code_of


async def test_write_to_a_full_disk_is_resource_exhausted_and_keeps_the_ingest_resumable(tmp_path):
    store = LocalStore(tmp_path / "content")
    w = await store.writer("ref-1", total=8)
    await w.write(b"abcd")
    real = os.dup(w._fd)
    full = os.open("/dev/full", os.O_WRONLY)
    os.dup2(full, w._fd)  # the disk fills up
    os.close(full)
    with pytest.raises(ResourceExhausted) as exc:
        await w.write(b"efgh")
    assert str(exc.value) == 'write ingest of ref "ref-1": No space left on device: resource exhausted'
    assert code_of(exc.value).name == "RESOURCE_EXHAUSTED"
    assert w.offset == 4
    os.dup2(real, w._fd)  # space freed: the same writer goes on where it was
    os.close(real)
    await w.write(b"efgh")
    digest = await w.commit(8)
    assert await store.read(digest) == b"abcdefgh"


def test_only_full_disk_errors_are_mapped():
    with pytest.raises(ResourceExhausted, match="apply: Disk quota exceeded"):
        with disk_full_is_exhausted("apply"):
            raise OSError(122, "Disk quota exceeded")
    with pytest.raises(PermissionError):
        with disk_full_is_exhausted("apply"):
            raise PermissionError(13, "Permission denied")


def test_an_ingest_left_without_its_ref_by_a_crash_is_removed_when_the_store_opens(tmp_path):
    """kill -9 between creating an ingest directory and writing its ``ref`` (found by the
    fault tests): no writer could resume it, no collection could name it."""
    store = LocalStore(tmp_path / "content")
    unnamed = store.root / "ingest" / ("0" * 64)
    unnamed.mkdir()
    (unnamed / "data").write_bytes(b"x")
    named = store.ingest_path("kept")
    named.mkdir()
    (named / "ref").write_text("kept")
    LocalStore(tmp_path / "content")  # the daemon starts again
    assert not unnamed.exists() and named.exists()
