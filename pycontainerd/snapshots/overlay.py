"""The overlayfs snapshotter (containerd's ``snapshots/overlay``).

Layout under the root (``<daemon root>/io.containerd.snapshotter.v1.overlayfs`` or the
``root_path`` option)::

    metadata/             the snapshotter's LMDB store (:mod:`.storage`)
    snapshots/<id>/fs     the snapshot's own layer: the upper dir while active, a lower dir
                          once committed
    snapshots/<id>/work   overlay's work dir (active snapshots only)

Mounts (the snapshotter never mounts anything itself):

* no parents: a bind mount of ``fs`` (``rw``, or ``ro`` for a view);
* a view with one parent: a read-only bind of the parent's ``fs``;
* otherwise ``overlay`` with ``lowerdir=<nearest parent>:…:<base>``, plus ``upperdir`` and
  ``workdir`` for an active snapshot; ``index=off`` first when the kernel has overlay's
  ``index`` feature (as containerd), and ``userxattr`` inside a user namespace that needs
  it. A snapshot labelled :data:`~.types.LABEL_UID_MAPPING` / ``GID`` (a pod with its own
  user namespace) gets ``uidmap=``/``gidmap=`` words, which the mount code turns into
  id-mapped lower layers (:mod:`pycontainerd.sysutil.idmap`), and an upper directory owned
  by the container's root. Option strings longer than a page are shortened at mount time by
  :func:`pycontainerd.mount.mount` (paths relative to ``snapshots/``), so 128 layers mount.

Init checks that overlayfs works here by mounting a two-lower overlay in the root and
raises :class:`~pycontainerd.errdefs.FailedPrecondition` with the reason if it does not.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

from .. import mount as mount_mod
from ..errdefs import FailedPrecondition, InvalidArgument
from ..fsutil import running_in_userns
from ..mount import Mount
from ..sysutil import idmap
from .base import LocalSnapshotter
from .storage import Snapshot
from .types import LABEL_GID_MAPPING, LABEL_UID_MAPPING, Info, Kind

UPPERDIR_LABEL = "containerd.io/snapshot/overlay.upperdir"
"""Label (with ``upperdir_label``) carrying the path of a snapshot's upper directory."""


def supports_index() -> bool:
    """True when the kernel's overlay module has the ``index`` feature (``index=off`` is
    then passed, as containerd does)."""
    return os.path.exists("/sys/module/overlay/parameters/index")


def check_supported(root: str | Path) -> None:
    """Mount a tiny overlay with two lower dirs inside ``root`` and unmount it.

    Raises:
        FailedPrecondition: overlayfs cannot be mounted here (the kernel's reason included).
    """
    Path(root).mkdir(parents=True, exist_ok=True, mode=0o700)
    td = Path(tempfile.mkdtemp(prefix="multiple-lowerdir-check", dir=root))
    try:
        for name in ("lower1", "lower2", "upper", "work", "merged"):
            (td / name).mkdir()
        opts = (f"lowerdir={td / 'lower2'}:{td / 'lower1'},upperdir={td / 'upper'},workdir={td / 'work'}",)
        try:
            mount_mod.mount(Mount("overlay", "overlay", opts), str(td / "merged"))
        except OSError as exc:
            raise FailedPrecondition(f"overlayfs is not supported on {root}: failed to mount overlay: {exc}") from exc
        mount_mod.unmount_all(str(td / "merged"))
    finally:
        shutil.rmtree(td, ignore_errors=True)


def _fs_type(path: str | Path) -> str:
    """The filesystem type of the mount holding ``path`` (from ``/proc/self/mountinfo``)."""
    real = os.path.realpath(path)
    best, fstype = "", ""
    with contextlib.suppress(OSError), open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            point = fields[4].encode().decode("unicode_escape")
            sep = fields.index("-")
            if (real == point or real.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
                best, fstype = point, fields[sep + 1]
    return fstype


def needs_userxattr(root: str | Path) -> bool:
    """Whether overlay needs ``userxattr`` here: only inside a user namespace, never on
    tmpfs, always on kernels from 5.11 (containerd's ``overlayutils.NeedsUserXAttr``)."""
    if not running_in_userns():
        return False
    if _fs_type(root) == "tmpfs":
        return False
    match = re.match(r"(\d+)\.(\d+)", os.uname().release)
    return bool(match and (int(match.group(1)), int(match.group(2))) >= (5, 11))


class OverlaySnapshotter(LocalSnapshotter):
    """Snapshots as overlayfs layers.

    Args:
        root: the snapshotter's directory.
        upperdir_label: add :data:`UPPERDIR_LABEL` to every info (containerd's option).
        check: verify at init that overlayfs mounts here (tests of the directory logic
            alone may turn it off).

    Raises:
        FailedPrecondition: overlayfs does not work on ``root``.
    """

    name = "overlayfs"

    def __init__(self, root: str | Path, upperdir_label: bool = False, check: bool = True) -> None:
        if check:
            check_supported(root)
        super().__init__(root)
        self.upperdir_label = upperdir_label
        self.index_off = supports_index()
        self.userxattr = needs_userxattr(root)

    def upper_path(self, sid: str) -> Path:
        return self.snapshot_dir(sid) / "fs"

    def work_path(self, sid: str) -> Path:
        return self.snapshot_dir(sid) / "work"

    def _populate(self, td: Path, snapshot: Snapshot) -> None:
        fs = td / "fs"
        fs.mkdir()
        os.chmod(fs, 0o755)
        if snapshot.kind == Kind.ACTIVE:
            (td / "work").mkdir()
            os.chmod(td / "work", 0o711)
        if snapshot.parent_ids:
            st = os.stat(self.upper_path(snapshot.parent_ids[0]))
            os.lchown(fs, st.st_uid, st.st_gid)
        remapped = _remapped_root(snapshot)
        if remapped is not None and snapshot.kind == Kind.ACTIVE:
            os.lchown(fs, *remapped)  # the container's root owns what it writes

    def _usage_path(self, sid: str) -> Path:
        return self.upper_path(sid)

    def _decorate(self, sid: str, info: Info) -> Info:
        if not self.upperdir_label:
            return info
        return replace(info, labels={**info.labels, UPPERDIR_LABEL: str(self.upper_path(sid))})

    def _mounts(self, snapshot: Snapshot) -> list[Mount]:
        if not snapshot.parent_ids:
            flag = "ro" if snapshot.kind == Kind.VIEW else "rw"
            return [Mount("bind", str(self.upper_path(snapshot.id)), (flag, "rbind"))]
        if snapshot.kind != Kind.ACTIVE and len(snapshot.parent_ids) == 1:
            return [Mount("bind", str(self.upper_path(snapshot.parent_ids[0])), ("ro", "rbind"))]
        options: list[str] = []
        if self.index_off:
            options.append("index=off")
        if self.userxattr:
            options.append("userxattr")
        if snapshot.kind == Kind.ACTIVE:
            options.append(f"workdir={self.work_path(snapshot.id)}")
            options.append(f"upperdir={self.upper_path(snapshot.id)}")
        options.append("lowerdir=" + ":".join(str(self.upper_path(p)) for p in snapshot.parent_ids))
        if _remapped_root(snapshot) is not None:
            options += [f"uidmap={snapshot.labels[LABEL_UID_MAPPING]}", f"gidmap={snapshot.labels[LABEL_GID_MAPPING]}"]
        return [Mount("overlay", "overlay", tuple(options))]


def _remapped_root(snapshot: Snapshot) -> tuple[int, int] | None:
    """The host ``(uid, gid)`` of the container's root for a snapshot labelled with both
    mappings; None without them. Raises :class:`InvalidArgument` for a bad mapping."""
    uidmap, gidmap = snapshot.labels.get(LABEL_UID_MAPPING), snapshot.labels.get(LABEL_GID_MAPPING)
    if not uidmap and not gidmap:
        return None
    try:
        return idmap.root_id(idmap.parse_map(uidmap or "")), idmap.root_id(idmap.parse_map(gidmap or ""))
    except ValueError as exc:
        raise InvalidArgument(f"snapshot labels {LABEL_UID_MAPPING}/{LABEL_GID_MAPPING}: {exc}") from exc

