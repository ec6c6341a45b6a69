"""Building layer tarballs and comparing directory trees, for the archive tests.

:class:`Layer` writes tar entries with Python's :mod:`tarfile` (so the bytes come from a
tar writer we did not write); :func:`tree` snapshots a directory tree — type, mode, owner,
mtime, content digest, symlink target, device numbers, xattrs and hardlink groups — without
following symlinks, so two trees (or one tree before and after) compare with ``==``.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import io
import os
import stat
import tarfile
from dataclasses import dataclass, field

import zstandard


@dataclass
class Layer:
    """An in-memory layer tar. Owners default to the current user so that tests need no root."""

    format: int = tarfile.PAX_FORMAT
    uid: int = field(default_factory=os.getuid)
    gid: int = field(default_factory=os.getgid)
    mtime: float = 1_600_000_000
    _buf: io.BytesIO = field(default_factory=io.BytesIO)
    _tf: tarfile.TarFile | None = None

    def _tar(self) -> tarfile.TarFile:
        if self._tf is None:
            self._tf = tarfile.open(fileobj=self._buf, mode="w", format=self.format, encoding="utf-8",
                                    errors="surrogateescape")
        return self._tf

    def _info(self, name: str, type_: bytes, mode: int, uid: int | None, gid: int | None,
              mtime: float | None, xattrs: dict[str, bytes] | None, pax: dict[str, str] | None) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type = type_
        info.mode = mode
        info.uid = self.uid if uid is None else uid
        info.gid = self.gid if gid is None else gid
        info.mtime = self.mtime if mtime is None else mtime
        headers = dict(pax or {})
        for k, v in (xattrs or {}).items():
            headers["SCHILY.xattr." + k] = v.decode("utf-8", "surrogateescape")
        info.pax_headers = headers
        return info

    def add(self, info: tarfile.TarInfo, data: bytes | None = None) -> Layer:
        if data is not None:
            info.size = len(data)
        self._tar().addfile(info, io.BytesIO(data) if data is not None else None)
        return self

    def dir(self, name, mode=0o755, *, uid=None, gid=None, mtime=None, xattrs=None, pax=None) -> Layer:
        return self.add(self._info(name, tarfile.DIRTYPE, mode, uid, gid, mtime, xattrs, pax))

    def file(self, name, data=b"", mode=0o644, *, uid=None, gid=None, mtime=None, xattrs=None, pax=None) -> Layer:
        return self.add(self._info(name, tarfile.REGTYPE, mode, uid, gid, mtime, xattrs, pax), data)

    def symlink(self, name, target, *, uid=None, gid=None, mtime=None, xattrs=None, pax=None) -> Layer:
        info = self._info(name, tarfile.SYMTYPE, 0o777, uid, gid, mtime, xattrs, pax)
        info.linkname = target
        return self.add(info)

    def hardlink(self, name, target, mode=0o644, *, uid=None, gid=None, mtime=None, xattrs=None) -> Layer:
        info = self._info(name, tarfile.LNKTYPE, mode, uid, gid, mtime, xattrs, None)
        info.linkname = target
        return self.add(info)

    def device(self, name, kind: str = "char", major=1, minor=3, mode=0o666, *, uid=None, gid=None) -> Layer:
        info = self._info(name, tarfile.CHRTYPE if kind == "char" else tarfile.BLKTYPE, mode, uid, gid, None,
                          None, None)
        info.devmajor, info.devminor = major, minor
        return self.add(info)

    def fifo(self, name, mode=0o644, *, uid=None, gid=None) -> Layer:
        return self.add(self._info(name, tarfile.FIFOTYPE, mode, uid, gid, None, None, None))

    def whiteout(self, path: str) -> Layer:
        d, _, base = path.rstrip("/").rpartition("/")
        return self.file(f"{d}/.wh.{base}" if d else f".wh.{base}", mode=0)

    def opaque(self, dir_: str) -> Layer:
        return self.file(f"{dir_.rstrip('/')}/.wh..wh..opq", mode=0)

    def tar(self) -> bytes:
        """The finished, uncompressed tar (tarfile pads it to a 10 KiB record)."""
        if self._tf is not None:
            self._tf.close()
            self._tf = None
        return self._buf.getvalue()


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def zst(data: bytes) -> bytes:
    return zstandard.ZstdCompressor(level=3).compress(data)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _xattrs(path: str) -> dict[str, bytes]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.ENODATA):
            return {}
        raise
    out = {}
    for n in names:
        if n.startswith("trusted.") or n == "security.selinux":
            continue
        out[n] = os.getxattr(path, n, follow_symlinks=False)
    return out


def tree(root: str | os.PathLike[str], *, mtimes: bool = True, dir_mtimes: bool = True,
         atimes: bool = False, inodes: bool = False) -> dict:
    """Snapshot of everything under ``root`` (``root`` itself as ``"."``, without mtime).

    Each path maps to a tuple (kind, mode, uid, gid, payload, xattrs, mtime_s); hardlink
    groups (names sharing an inode, non-directories) are under the key ``"<links>"``.
    ``inodes=True`` adds the inode number (to check that nothing was replaced).
    """
    root = os.fspath(root)
    out: dict = {}
    groups: dict[tuple[int, int], list[str]] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in [".", *sorted(dirnames + filenames)] if dirpath == root else sorted(dirnames + filenames):
            path = root if name == "." else os.path.join(dirpath, name)
            rel = "." if name == "." else os.path.relpath(path, root)
            st = os.lstat(path)
            mode = st.st_mode
            if stat.S_ISREG(mode):
                with open(path, "rb") as f:
                    payload = ("file", hashlib.sha256(f.read()).hexdigest())
                if st.st_nlink > 1:
                    groups.setdefault((st.st_dev, st.st_ino), []).append(rel)
            elif stat.S_ISLNK(mode):
                payload = ("symlink", os.readlink(path))
            elif stat.S_ISDIR(mode):
                payload = ("dir",)
            elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                payload = ("chr" if stat.S_ISCHR(mode) else "blk", os.major(st.st_rdev), os.minor(st.st_rdev))
            elif stat.S_ISFIFO(mode):
                payload = ("fifo",)
            else:
                payload = ("other",)
            keep_mtime = mtimes and rel != "." and (dir_mtimes or not stat.S_ISDIR(mode))
            entry = (stat.S_IFMT(mode), stat.S_IMODE(mode), st.st_uid, st.st_gid, payload, _xattrs(path),
                     st.st_mtime_ns // 1_000_000_000 if keep_mtime else None)
            if atimes:
                entry += (st.st_atime_ns,)
            if inodes:
                entry += (st.st_ino, st.st_nlink, st.st_mtime_ns, st.st_ctime_ns)
            out[rel] = entry
    out["<links>"] = sorted(sorted(g) for g in groups.values() if len(g) > 1)
    return out


def tree_diff(a: dict, b: dict) -> list[str]:
    """Readable differences between two :func:`tree` snapshots (for assertion messages)."""
    lines = []
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k):
            lines.append(f"{k}: {a.get(k)!r} != {b.get(k)!r}")
    return lines
