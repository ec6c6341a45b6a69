"""The local content store (pycontainerd.content.local): containerd's file layout, resumable
writes, verification on commit, the one-writer-per-ref lock, ranged reads."""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat

import pytest

from pycontainerd import digest as digest_mod
from pycontainerd.content import local as local_mod
from pycontainerd.content.ingest import format_timestamp, parse_timestamp
from pycontainerd.content.local import LocalStore
from pycontainerd.errdefs import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    OutOfRange,
    Unavailable,
)


def dgst(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


DATA = os.urandom(200_000) + b"tail"  # bigger than INLINE_IO: exercises the thread path


@pytest.fixture
def store(tmp_path):
    return LocalStore(tmp_path / "io.containerd.content.v1.content", lock_attempts=2)


async def write_all(store, ref, data, chunk=65_536, **kw):
    w = await store.writer(ref, **kw)
    for i in range(0, len(data), chunk):
        await w.write(data[i : i + chunk])
    return w


async def test_write_commit_layout_and_read(store):
    w = await store.writer("ref-1", total=len(DATA), expected=dgst(DATA))
    ingest = store.ingest_path("ref-1")
    assert ingest.name == hashlib.sha256(b"ref-1").hexdigest()
    assert sorted(p.name for p in ingest.iterdir()) == ["data", "expected", "ref", "startedat", "total", "updatedat"]
    assert (ingest / "ref").read_text() == "ref-1"
    assert (ingest / "total").read_text() == str(len(DATA))
    assert (ingest / "expected").read_text() == dgst(DATA)
    parse_timestamp((ingest / "startedat").read_text())

    for i in range(0, len(DATA), 70_000):
        await w.write(DATA[i : i + 70_000], offset=i)
    assert w.digest() == dgst(DATA)
    assert (await store.status("ref-1")).offset == len(DATA)
    assert await w.commit(len(DATA), dgst(DATA)) == dgst(DATA)
    assert w.closed and not store.locked("ref-1")

    blob = store.root / "blobs" / "sha256" / dgst(DATA).split(":")[1]
    assert blob.read_bytes() == DATA
    assert stat.S_IMODE(blob.stat().st_mode) == 0o444
    assert not ingest.exists()
    info = await store.info(dgst(DATA))
    assert (info.digest, info.size) == (dgst(DATA), len(DATA))
    assert [i.digest for i in await store.walk()] == [dgst(DATA)]

    # ranged reads: offset/size honoured, short at the end, past the end refused
    assert await store.read(dgst(DATA), 10, 5) == DATA[10:15]
    assert await store.read(dgst(DATA), len(DATA) - 4) == b"tail"
    assert await store.read(dgst(DATA), len(DATA) - 2, 100) == b"il"
    assert await store.read(dgst(DATA), len(DATA)) == b""
    with pytest.raises(OutOfRange, match="read past object length"):
        await store.read(dgst(DATA), len(DATA) + 1)
    async with await store.reader_at(dgst(DATA)) as ra:
        assert ra.size == len(DATA)
        assert await ra.read(199_990, 100_000) == DATA[199_990:]


async def test_resume_continues_at_current_offset(store):
    w = await write_all(store, "r", DATA[:100_000])
    await w.close()
    status = await store.status("r")
    assert (status.ref, status.offset) == ("r", 100_000)
    assert status.updated_at >= status.started_at > 0

    w = await store.writer("r")
    assert w.offset == 100_000
    with pytest.raises(OutOfRange, match=r"write @5 must occur at current offset 100000"):
        await w.write(b"x", offset=5)
    await w.write(DATA[100_000:], offset=100_000)
    assert await w.commit(len(DATA), dgst(DATA)) == dgst(DATA)


async def test_resume_in_process_reuses_hash_state(store, monkeypatch):
    w = await write_all(store, "r", DATA[:150_000])
    await w.close()

    def no_rehash(path):
        raise AssertionError("resume in the same process must not hash the data again")

    monkeypatch.setattr(local_mod, "_hash_file", no_rehash)
    w = await store.writer("r")
    await w.write(DATA[150_000:])
    assert await w.commit(0, dgst(DATA)) == dgst(DATA)


async def test_resume_after_restart_rehashes_existing_data_once(store, monkeypatch):
    w = await write_all(store, "r", DATA[:150_000])
    await w.close()
    calls = []
    real = local_mod._hash_file
    monkeypatch.setattr(local_mod, "_hash_file", lambda p: calls.append(p) or real(p))

    restarted = LocalStore(store.root)  # a new process: no saved hash state
    w = await restarted.writer("r")
    assert w.offset == 150_000 and len(calls) == 1
    await w.write(DATA[150_000:])
    assert await w.commit(len(DATA), dgst(DATA)) == dgst(DATA)
    assert len(calls) == 1


async def test_digest_mismatch_commits_nothing_and_keeps_ingest(store):
    w = await write_all(store, "bad", b"hello")
    wrong = dgst(b"other")
    with pytest.raises(FailedPrecondition, match=rf"unexpected commit digest {dgst(b'hello')}, expected {wrong}"):
        await w.commit(5, wrong)
    assert w.closed and not store.locked("bad")
    assert list((store.root / "blobs" / "sha256").iterdir()) == []
    assert (await store.status("bad")).offset == 5  # still there: resumable or abortable
    # resumable: the right digest commits
    w = await store.writer("bad")
    assert await w.commit(5, dgst(b"hello")) == dgst(b"hello")


async def test_size_mismatch_commits_nothing(store):
    w = await write_all(store, "short", b"hello")
    with pytest.raises(FailedPrecondition, match="unexpected commit size 5, expected 6"):
        await w.commit(6, "")
    assert list((store.root / "blobs" / "sha256").iterdir()) == []
    await store.abort("short")
    with pytest.raises(NotFound):
        await store.status("short")
    with pytest.raises(NotFound, match='ingest ref "short"'):
        await store.abort("short")


async def test_existing_blob_is_already_exists(store):
    w = await write_all(store, "a", b"same")
    await w.commit()
    w = await write_all(store, "b", b"same")
    with pytest.raises(AlreadyExists, match=f"content {dgst(b'same')}"):
        await w.commit()
    assert not store.ingest_path("b").exists()
    with pytest.raises(AlreadyExists):
        await store.writer("c", expected=dgst(b"same"))
    assert not store.locked("c")


async def test_one_writer_per_ref(store):
    w = await store.writer("busy")
    with pytest.raises(Unavailable, match=r"ref busy locked for .* \(since "):
        await store.writer("busy")
    other = await store.writer("other")  # other refs are free
    await other.close()
    await w.close()
    again = await store.writer("busy")
    await again.close()


async def test_locked_ref_waits_for_release(tmp_path):
    store = LocalStore(tmp_path / "c", lock_attempts=10)
    w = await store.writer("r")

    async def release():
        await asyncio.sleep(0.05)
        await w.close()

    task = asyncio.create_task(release())
    second = await store.writer("r")  # retried with backoff until the first one closed
    await task
    await second.close()


async def test_truncate_restarts_the_write(store):
    w = await write_all(store, "t", b"garbage")
    await w.truncate(0)
    assert w.offset == 0
    await w.write(b"good")
    with pytest.raises(InvalidArgument):
        await w.truncate(2)
    assert await w.commit(4, dgst(b"good")) == dgst(b"good")


async def test_closed_writer_refuses(store):
    w = await store.writer("x")
    await w.close()
    await w.close()  # idempotent
    with pytest.raises(FailedPrecondition, match="closed writer"):
        await w.write(b"a")
    with pytest.raises(FailedPrecondition, match="closed writer"):
        await w.commit()


async def test_list_statuses_filters_and_delete(store):
    for ref in ("layer-1", "layer-2", "config"):
        await (await write_all(store, ref, ref.encode())).close()
    assert [s.ref for s in await store.list_statuses()] == ["config", "layer-1", "layer-2"]
    assert [s.ref for s in await store.list_statuses(["ref~=layer"])] == ["layer-1", "layer-2"]
    assert [s.ref for s in await store.list_statuses(["ref==config", "ref==layer-2"])] == ["config", "layer-2"]
    with pytest.raises(InvalidArgument):
        await store.list_statuses(["ref=="])
    assert store.walk_status_refs_sync() == ["config", "layer-1", "layer-2"]

    w = await store.writer("config")
    digest = await w.commit()
    assert [i.digest for i in await store.walk([f"digest=={digest}"])] == [digest]
    assert await store.walk(["digest==sha256:" + "0" * 64]) == []
    await store.delete(digest)
    with pytest.raises(NotFound, match=f"content {digest}"):
        await store.info(digest)
    with pytest.raises(NotFound):
        await store.delete(digest)
    with pytest.raises(NotFound):
        await store.reader_at(digest)


async def test_abort_while_writing_fails_the_commit(store):
    w = await write_all(store, "gone", b"data")
    await store.abort("gone")
    with pytest.raises(NotFound, match="aborted"):
        await w.commit()
    assert not store.locked("gone")


async def test_cancelled_writer_open_releases_the_ref(store):
    task = asyncio.create_task(store.writer("c"))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not store.locked("c")
    await (await store.writer("c")).close()


@pytest.mark.parametrize(
    "digest, reason",
    [
        ("", "invalid checksum digest format"),
        ("sha256", "invalid checksum digest format"),
        ("sha256:", "invalid checksum digest format"),
        ("sha256:abc", "invalid checksum digest length"),
        ("sha256:" + "A" * 64, "invalid checksum digest format"),
        ("sha256:" + "g" * 64, "invalid checksum digest format"),
        ("sha512:" + "a" * 128, "unsupported digest algorithm"),
        ("md5:d41d8cd98f00b204e9800998ecf8427e", "unsupported digest algorithm"),
        ("../../etc:passwd", "invalid checksum digest format"),
    ],
)
async def test_invalid_digests_are_refused(store, digest, reason):
    with pytest.raises(InvalidArgument, match=reason):
        digest_mod.validate(digest)
    with pytest.raises(InvalidArgument):
        await store.info(digest)
    if digest:  # "" means "no expected digest"
        with pytest.raises(InvalidArgument):
            await store.writer("r", expected=digest)
    assert not store.locked("r")


async def test_empty_ref_is_refused(store):
    with pytest.raises(InvalidArgument, match="ref must not be empty"):
        await store.writer("")


def test_timestamps_round_trip_go_format():
    ns = 1_700_000_000_123_456_789
    text = format_timestamp(ns)
    assert text == "2023-11-14T22:13:20.123456789Z"
    assert parse_timestamp(text) == ns
    assert format_timestamp(1_700_000_000_000_000_000) == "2023-11-14T22:13:20Z"
    # Go writes local time with an offset and trims trailing zeros
    assert parse_timestamp("2023-11-15T00:13:20.1234+02:00") == 1_700_000_000_123_400_000
    with pytest.raises(ValueError):
        parse_timestamp("yesterday")


async def test_collecting_an_ingest_a_writer_holds_removes_it_when_the_writer_closes(store):
    """Issue 18.6: garbage collection never leaves an ingest on disk that no namespace
    records (ListStatuses could not show it): one held by a writer goes when it closes."""
    w = await store.writer("held", total=10)
    await w.write(b"12345")
    assert store.collect_ingest_sync("held") is False  # in use: deferred
    assert store.ingest_path("held").exists()
    await w.close()
    assert not store.ingest_path("held").exists()
    assert await store.list_statuses() == []

    w = await store.writer("idle", total=10)
    await w.write(b"12345")
    await w.close()
    assert store.collect_ingest_sync("idle") is True and not store.ingest_path("idle").exists()
    with pytest.raises(NotFound):
        store.collect_ingest_sync("idle")
    # a later write of the same ref starts afresh
    w = await store.writer("held")
    assert w.offset == 0
    await w.close()
    assert [s.ref for s in await store.list_statuses()] == ["held"]
