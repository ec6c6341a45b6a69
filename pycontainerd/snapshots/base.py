"""What the local snapshotters (overlayfs, native) share: the metadata store, one directory
per snapshot id under ``<root>/snapshots/``, and the asynchronous face over blocking work.

Directory discipline (containerd's):

* a snapshot is built in ``snapshots/new-XXXX`` and renamed to ``snapshots/<id>`` inside
  the store's write transaction; any failure removes the half-made directory;
* removal renames ``snapshots/<id>`` to ``snapshots/rm-<id>`` inside the transaction and
  deletes it after the commit (renaming back if the commit fails);
* :meth:`LocalSnapshotter.cleanup_sync` deletes every directory in ``snapshots/`` that no
  record names (left-overs of a crash), listing them under the write lock so no snapshot
  being created is taken for an orphan.

Blocking work (store writes, copies, ``du``) runs in worker threads
(:func:`asyncio.to_thread`); short reads run on the caller's thread.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..errdefs import ContainerdError, wrap
from ..log import get_logger
from ..mount import Mount
from . import storage
from .storage import MetaStore, Snapshot
from .types import Info, Kind, Usage

log = get_logger("snapshots")


def disk_usage(*roots: str | Path) -> Usage:
    """Blocks allocated (bytes) and inodes under ``roots``, each inode counted once
    (containerd's ``fs.DiskUsage``: hard links are not double counted, the roots count)."""
    seen: set[tuple[int, int]] = set()
    size = 0
    for root in roots:
        st = os.lstat(root)
        seen.add((st.st_dev, st.st_ino))
        size += st.st_blocks * 512
        stack = [os.fspath(root)]
        while stack:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    st = entry.stat(follow_symlinks=False)
                    ident = (st.st_dev, st.st_ino)
                    if ident not in seen:
                        seen.add(ident)
                        size += st.st_blocks * 512
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
    return Usage(size=size, inodes=len(seen))


class LocalSnapshotter:
    """Base of the snapshotters that keep snapshots as directories under ``root``.

    Subclasses define :meth:`_needs_dir`, :meth:`_populate`, :meth:`_mounts` and
    :meth:`_usage_path`, and may decorate infos with :meth:`_decorate`.
    """

    name = "local"

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.snapshots_dir = self.root / "snapshots"
        self.snapshots_dir.mkdir(exist_ok=True, mode=0o700)
        self.ms = MetaStore(self.root / "metadata")

    # ------------------------------------------------------------------ subclass hooks

    def _needs_dir(self, kind: Kind, parent: str) -> bool:
        return True

    def _populate(self, td: Path, snapshot: Snapshot) -> None:
        """Fill the new snapshot's temporary directory ``td`` (runs inside the write txn)."""
        raise NotImplementedError

    def _mounts(self, snapshot: Snapshot) -> list[Mount]:
        raise NotImplementedError

    def _usage_path(self, sid: str) -> Path:
        """What ``du`` measures for an active snapshot."""
        raise NotImplementedError

    def _decorate(self, sid: str, info: Info) -> Info:
        return info

    def snapshot_dir(self, sid: str) -> Path:
        """``<root>/snapshots/<id>``."""
        return self.snapshots_dir / sid

    # ------------------------------------------------------------------ blocking API

    def stat_sync(self, key: str) -> Info:
        sid, info, _ = self.ms.view(lambda txn: storage.get_info(txn, key))
        return self._decorate(sid, info)

    def update_sync(self, info: Info, paths: Sequence[str] = ()) -> Info:
        def fn(txn):
            updated = storage.update_info(txn, info, paths)
            sid, _, _ = storage.get_info(txn, info.name)
            return sid, updated

        sid, updated = self.ms.update(fn)
        return self._decorate(sid, updated)

    def usage_sync(self, key: str) -> Usage:
        sid, info, usage = self.ms.view(lambda txn: storage.get_info(txn, key))
        if info.kind == Kind.ACTIVE:
            usage = disk_usage(self._usage_path(sid))
        return usage

    def mounts_sync(self, key: str) -> list[Mount]:
        try:
            snapshot = self.ms.view(lambda txn: storage.get_snapshot(txn, key))
        except ContainerdError as exc:
            raise wrap(exc, "failed to get active mount") from exc
        return self._mounts(snapshot)

    def prepare_sync(self, key: str, parent: str = "", labels: Mapping[str, str] | None = None) -> list[Mount]:
        return self._create(Kind.ACTIVE, key, parent, labels)

    def view_sync(self, key: str, parent: str = "", labels: Mapping[str, str] | None = None) -> list[Mount]:
        return self._create(Kind.VIEW, key, parent, labels)

    def commit_sync(self, name: str, key: str, labels: Mapping[str, str] | None = None) -> None:
        def fn(txn):
            sid, info, _ = storage.get_info(txn, key)
            usage = disk_usage(self._usage_path(sid)) if info.kind == Kind.ACTIVE else Usage()
            try:
                storage.commit_active(txn, key, name, usage, labels)
            except ContainerdError as exc:
                raise wrap(exc, "failed to commit snapshot") from exc

        self.ms.update(fn)

    def remove_sync(self, key: str, trash: list[Path] | None = None) -> None:
        """Remove snapshot ``key``: its record goes in one transaction, its directory is
        renamed aside inside it and deleted after the commit — or, given ``trash``, appended
        there for the caller to delete later with :meth:`empty_trash_sync` (the garbage
        collector does so once its own metadata transaction has committed, so a long
        directory removal holds no write lock of the daemon)."""
        moved: list[tuple[Path, Path]] = []

        def fn(txn):
            try:
                sid, _ = storage.remove(txn, key)
            except ContainerdError as exc:
                raise wrap(exc, "failed to remove") from exc
            path, renamed = self.snapshot_dir(sid), self.snapshots_dir / f"rm-{sid}"
            try:
                os.rename(path, renamed)
            except FileNotFoundError:
                return
            moved.append((path, renamed))

        try:
            self.ms.update(fn)
        except BaseException:
            for path, renamed in moved:  # the commit failed: put the directory back
                try:
                    os.rename(renamed, path)
                except OSError as exc:
                    log.error("failed to rename after failed commit", path=str(renamed), error=str(exc))
            raise
        if trash is not None:
            trash.extend(renamed for _, renamed in moved)
        else:
            self.empty_trash_sync([renamed for _, renamed in moved])

    def empty_trash_sync(self, trash: Sequence[Path]) -> None:
        """Delete directories :meth:`remove_sync` renamed aside (a crash before this leaves
        them for :meth:`cleanup_sync`, which removes every directory no record names)."""
        for path in trash:
            _remove_tree(path)

    def committed_from_sync(self) -> dict[str, str]:
        """``{active key: committed name}``: what each committed snapshot was committed from."""
        return self.ms.view(storage.committed_from)

    def uncommit_sync(self, name: str, key: str, labels: Mapping[str, str] | None = None) -> None:
        """Make committed ``name`` active ``key`` again (see :func:`.storage.uncommit`)."""
        self.ms.update(lambda txn: storage.uncommit(txn, name, key, labels))

    def walk_sync(self, filters: Sequence[str] = ()) -> list[Info]:
        pairs = self.ms.view(lambda txn: storage.walk_info(txn, filters))
        return [self._decorate(sid, info) for sid, info in pairs]

    def cleanup_sync(self) -> None:
        def fn(txn):
            ids = storage.id_map(txn)
            return [name for name in os.listdir(self.snapshots_dir) if name not in ids]

        for name in self.ms.update(fn):
            _remove_tree(self.snapshots_dir / name)

    def close_sync(self) -> None:
        self.ms.close()

    def _create(self, kind: Kind, key: str, parent: str, labels: Mapping[str, str] | None) -> list[Mount]:
        placed: list[Path] = []

        def fn(txn) -> Snapshot:
            td: Path | None = None
            if self._needs_dir(kind, parent):
                td = Path(tempfile.mkdtemp(prefix="new-", dir=self.snapshots_dir))
            try:
                try:
                    snapshot = storage.create_snapshot(txn, kind, key, parent, labels)
                except ContainerdError as exc:
                    raise wrap(exc, "failed to create snapshot") from exc
                if td is not None:
                    self._populate(td, snapshot)
                    path = self.snapshot_dir(snapshot.id)
                    os.rename(td, path)
                    td = None
                    placed.append(path)
                return snapshot
            except BaseException:
                if td is not None:
                    _remove_tree(td)
                raise

        try:
            snapshot = self.ms.update(fn)
        except BaseException:
            for path in placed:  # renamed into place but the commit failed
                _remove_tree(path)
            raise
        return self._mounts(snapshot)

    # ------------------------------------------------------------------ async API

    async def stat(self, key: str) -> Info:
        return self.stat_sync(key)

    async def update(self, info: Info, paths: Sequence[str] = ()) -> Info:
        return await asyncio.to_thread(self.update_sync, info, list(paths))

    async def usage(self, key: str) -> Usage:
        return await asyncio.to_thread(self.usage_sync, key)

    async def mounts(self, key: str) -> list[Mount]:
        return self.mounts_sync(key)

    async def prepare(self, key: str, parent: str = "", labels: Mapping[str, str] | None = None) -> list[Mount]:
        return await asyncio.to_thread(self.prepare_sync, key, parent, labels)

    async def view(self, key: str, parent: str = "", labels: Mapping[str, str] | None = None) -> list[Mount]:
        return await asyncio.to_thread(self.view_sync, key, parent, labels)

    async def commit(self, name: str, key: str, labels: Mapping[str, str] | None = None) -> None:
        await asyncio.to_thread(self.commit_sync, name, key, labels)

    async def remove(self, key: str) -> None:
        await asyncio.to_thread(self.remove_sync, key)

    async def walk(self, filters: Sequence[str] = ()) -> list[Info]:
        return self.walk_sync(list(filters))

    async def cleanup(self) -> None:
        await asyncio.to_thread(self.cleanup_sync)

    async def close(self) -> None:
        self.close_sync()


def _remove_tree(path: Path) -> None:
    """Delete ``path`` recursively; what cannot be deleted is logged (cleanup retries)."""

    def report(func, p, exc) -> None:
        exc = exc[1] if isinstance(exc, tuple) else exc
        log.warning("failed to remove directory", path=str(p), error=str(exc))

    if os.path.lexists(path):
        try:
            if sys.version_info >= (3, 12):
                shutil.rmtree(path, onexc=report)
            else:
                shutil.rmtree(path, onerror=report)
        except RecursionError:
            # Python 3.11's rmtree recurses once per level; a 10 KiB layer can nest
            # directories thousands deep. Finish with the iterative remover of apply.
            from ..archive.rootpath import remove_all

            parent = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                remove_all(parent, path.name)
            except OSError as exc:
                report(remove_all, path, exc)
            finally:
                os.close(parent)
