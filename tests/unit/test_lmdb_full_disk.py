"""A commit the disk has no room for is ``RESOURCE_EXHAUSTED``: LMDB says ENOSPC when a
page write fails outright, and EIO ("Input/output error") when the disk cuts one short (a
short ``pwrite``), which a CRI pull onto a full tmpfs hit. EIO with room left stays what it
is: an error the daemon does not explain away."""

from __future__ import annotations

import os
from collections import namedtuple

import lmdb
import pytest

from pycontainerd import lmdb_env
from pycontainerd.errdefs import ResourceExhausted
from pycontainerd.metadata.db import MetadataDB

StatVfs = namedtuple("StatVfs", "f_bavail f_frsize")


class FailingCommit:
    """Stands for the LMDB environment: every write transaction fails at commit."""

    def __init__(self, env, message: str) -> None:
        self.real, self.message = env, message

    def begin(self, write: bool = False):
        txn = self.real.begin(write=write)
        message = self.message

        class Txn:
            def __enter__(self):
                return txn.__enter__()

            def __exit__(self, *exc):
                txn.abort()
                raise lmdb.Error(message)

        return Txn()


@pytest.fixture
def db(tmp_path):
    d = MetadataDB(tmp_path / "meta")
    yield d
    d.close()


def _put(txn) -> None:
    txn.put("meta", b"k", b"v")


@pytest.mark.parametrize("free,exhausted", [(8 << 10, True), (512 << 20, False)])
def test_eio_at_commit_is_a_full_disk_only_when_the_disk_is_full(db, monkeypatch, free, exhausted):
    real = db.env
    db.env = FailingCommit(real, "mdb_txn_commit: Input/output error")
    monkeypatch.setattr(lmdb_env.os, "statvfs", lambda path: StatVfs(free // 4096, 4096))
    try:
        if exhausted:
            with pytest.raises(ResourceExhausted, match="no space left on device"):
                db.update_sync(_put)
        else:
            with pytest.raises(lmdb.Error, match="Input/output error"):
                db.update_sync(_put)
    finally:
        db.env = real
    assert db.view(lambda txn: txn.get("meta", b"k")) is None        # nothing half-written
    assert os.path.isdir(db.path)


def test_enospc_at_commit_is_exhausted_whatever_statvfs_says(db):
    real = db.env
    db.env = FailingCommit(real, "mdb_txn_commit: No space left on device")
    try:
        with pytest.raises(ResourceExhausted):
            db.update_sync(_put)
    finally:
        db.env = real
