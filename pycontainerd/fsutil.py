"""Small filesystem helpers with crash-safety guarantees."""

from __future__ import annotations

import functools
import os
from pathlib import Path


@functools.cache
def running_in_userns() -> bool:
    """Whether this process runs in a user namespace other than the initial one (whose
    ``uid_map`` is the single identity line ``0 0 4294967295``), as rootless daemons do."""
    try:
        lines = [x for x in Path("/proc/self/uid_map").read_text().split("\n") if x.strip()]
    except OSError:
        return False
    return not (len(lines) == 1 and lines[0].split() == ["0", "0", "4294967295"])


def cloexec_fds_under(directory: Path) -> list[int]:
    """Mark close-on-exec every open descriptor of this process on a file under
    ``directory``; return those it had to mark.

    LMDB opens its data file without ``O_CLOEXEC``, and the daemon's children are spawned by
    uvloop (libuv), which closes nothing but close-on-exec descriptors: without this every
    zygote, shim, runc and CNI plugin would hold the metadata files open."""
    prefix = os.path.join(os.path.realpath(directory), "")
    marked = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if not os.readlink(f"/proc/self/fd/{fd}").startswith(prefix) or not os.get_inheritable(fd):
                continue
            os.set_inheritable(fd, False)
        except OSError:  # closed meanwhile (the listing's own descriptor, another thread's)
            continue
        marked.append(fd)
    return marked


def fsync_dir(path: Path) -> None:
    """``fsync`` a directory so a rename or create inside it survives power loss."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``path`` so that after a crash it holds either the old or the new content:
    temp file, fsync, rename, fsync of the directory."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)
