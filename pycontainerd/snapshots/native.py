"""The native snapshotter (containerd's ``snapshots/native``): every active snapshot is a
full copy of its parent, so it works on any filesystem and needs no overlay support.

Layout: ``metadata/`` (the LMDB store) and ``snapshots/<id>/`` (the tree itself). A new
active snapshot (and a parentless view) gets a directory; the parent's tree is copied in
with ``cp -a --reflink=auto`` — owners, modes, times, hard links, symlinks, device nodes,
fifos, ACLs and xattrs preserved, sharing blocks where the filesystem can (a copy that
cannot keep an xattr such as ``security.*`` goes on, as containerd's does). A view with a
parent copies nothing and mounts the parent read-only.

Mounts are binds: ``rbind`` plus ``rw`` (active) or ``ro`` (view).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from ..errdefs import ContainerdError
from ..mount import Mount
from .base import LocalSnapshotter
from .storage import Snapshot
from .types import Kind


class CopyFailed(ContainerdError):
    """Copying the parent's tree failed (reported as ``UNKNOWN``, with cp's words)."""

    code = "UNKNOWN"
    suffix = "copying of parent failed"


class NativeSnapshotter(LocalSnapshotter):
    """Snapshots as plain directory copies under ``root``."""

    name = "native"

    def _needs_dir(self, kind: Kind, parent: str) -> bool:
        return kind == Kind.ACTIVE or not parent

    def _populate(self, td: Path, snapshot: Snapshot) -> None:
        os.chmod(td, 0o755)  # the snapshot's root (then the parent's mode, if any, is copied)
        if not snapshot.parent_ids:
            return
        parent = self.snapshot_dir(snapshot.parent_ids[0])
        proc = subprocess.run(
            ["cp", "-a", "--reflink=auto", "--", f"{parent}/.", f"{td}/"],
            capture_output=True, text=True,
        )
        if proc.returncode != 0:
            raise CopyFailed(proc.stderr.strip() or f"cp exited with {proc.returncode}")

    def _usage_path(self, sid: str) -> Path:
        return self.snapshot_dir(sid)

    def _mounts(self, snapshot: Snapshot) -> list[Mount]:
        flag = "ro" if snapshot.kind == Kind.VIEW else "rw"
        if not snapshot.parent_ids or snapshot.kind == Kind.ACTIVE:
            source = self.snapshot_dir(snapshot.id)
        else:
            source = self.snapshot_dir(snapshot.parent_ids[0])
        return [Mount("bind", str(source), ("rbind", flag))]
