"""Mounts as containerd describes them (``containerd.types.Mount``): a type, a source and a
list of options, turned into ``mount(2)`` calls by :mod:`pycontainerd.sysutil.mounts`
(shared with the shim; the option words, ``MS_*`` flags and overlay compaction are there).

Snapshotters *return* mounts and never mount; the diff applier, the task manager and
``ctr snapshots mounts`` users mount them with :func:`mount_all` and must always undo it
with :func:`unmount_all` (also on errors). The daemon is threaded, so an overlay whose
layer paths had to be made relative is mounted by ``mount(8)`` in a child started in their
common parent, never by changing the daemon's own working directory.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field

from .sysutil import mounts as _sys
from .sysutil.mounts import is_mountpoint, parse_options, unmount, unmount_all

__all__ = ["Mount", "is_mountpoint", "mount", "mount_all", "parse_options", "unmount", "unmount_all"]


@dataclass(frozen=True)
class Mount:
    """One mount: ``type`` (``overlay``, ``bind``, ``tmpfs`` …), ``source`` and ``options``."""

    type: str
    source: str
    options: Sequence[str] = field(default_factory=tuple)
    target: str = ""


def _mount_in_child(source: str, target: str, fstype: str, flags: int, data: str, cwd: str) -> None:
    """``mount(8)`` run in ``cwd``, where the relative layer paths of ``data`` resolve."""
    proc = subprocess.run(["mount", "-t", fstype, "-o", data, source, target],
                          cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise OSError(0, f"mount {fstype} on {target}: {proc.stderr.strip()}")


def mount(m: Mount, target: str) -> None:
    """Mount ``m`` on ``target``. Raises :class:`OSError` (with the errno) on failure and
    :class:`~pycontainerd.errdefs.InvalidArgument` for a mount whose data cannot fit the
    kernel's limit."""
    _sys.mount(m, target, _mount_in_child)


def mount_all(mounts: Sequence[Mount], target: str) -> None:
    """Mount each of ``mounts`` on ``target`` in order; on failure, undo what was done."""
    _sys.mount_all(mounts, target, _mount_in_child)
