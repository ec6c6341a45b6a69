"""What ``pyctr admin check`` probes in ``/proc``: whether the daemon holds its lock, the
mounts, the shims (processes whose working directory is a task bundle), and a process's
start time, name and open files."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .loaders import LOCK_FILE, TASK_DIR


def daemon_running(root: Path) -> bool:
    """True when a process holds the daemon's ``flock`` on ``<root>/pycontainerd.lock``
    (read from ``/proc/locks``, so the check itself never takes the lock — a daemon
    starting meanwhile must not find it taken)."""
    try:
        st = os.stat(root / LOCK_FILE)
        with open("/proc/locks") as f:
            lines = f.read().splitlines()
    except OSError:
        return False
    want = (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
    for line in lines:
        fields = line.split()
        if "FLOCK" not in fields or "->" in fields:
            continue
        try:
            major, minor, inode = fields[5].split(":")
            if (int(major, 16), int(minor, 16), int(inode)) == want:
                return True
        except (IndexError, ValueError):
            continue
    # some filesystems (overlayfs) show another device in /proc/locks: does the pid the
    # lock file names hold it open?
    return str(root / LOCK_FILE) in open_paths(lock_owner(root))


def _unescape(path: str) -> str:
    """Undo mountinfo's octal escapes (``\\040`` for a space)."""
    if "\\" not in path:
        return path
    return path.encode().decode("unicode_escape").encode("latin-1").decode(errors="surrogateescape")


def mount_points(mountinfo: str = "/proc/self/mountinfo") -> list[tuple[str, str]]:
    """``(mount point, filesystem type)`` of every mount, in mount order."""
    out = []
    with open(mountinfo) as f:
        for line in f:
            fields = line.split()
            try:
                fstype = fields[fields.index("-") + 1]
            except (ValueError, IndexError):
                fstype = "?"
            out.append((_unescape(fields[4]), fstype))
    return out


@dataclass(frozen=True)
class ShimProcess:
    """A process whose working directory is a task bundle and that leads its own session
    (how every runtime v2 shim runs): its ``pid`` and the bundle's ``namespace``/``id``;
    ``gone`` when the bundle was removed under it."""

    pid: int
    namespace: str
    id: str
    gone: bool


def shim_processes(state: Path, proc: str = "/proc") -> list[ShimProcess]:
    """The shims of the daemon whose ``--state`` is ``state`` (see :class:`ShimProcess`)."""
    base = str(state / TASK_DIR) + "/"
    out = []
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            cwd = os.readlink(f"{proc}/{pid}/cwd")
            if os.getsid(pid) != pid:
                continue
        except OSError:
            continue
        gone = cwd.endswith(" (deleted)")
        if gone:
            cwd = cwd[: -len(" (deleted)")]
        if not cwd.startswith(base):
            continue
        parts = cwd[len(base):].split("/")
        if len(parts) != 2:
            continue  # a container's process lives below <bundle>/rootfs
        ns, id = parts
        if id.startswith("."):  # renamed for deletion
            gone, id = True, id[1:]
        out.append(ShimProcess(pid, ns, id, gone or not os.path.isdir(cwd)))
    return out


def start_time(pid: int, proc: str = "/proc") -> str | None:
    """Field 22 of ``/proc/<pid>/stat`` (start time in clock ticks, as runc records it)."""
    try:
        stat = Path(f"{proc}/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()
    return fields[19] if len(fields) > 19 else None


def comm(pid: int, proc: str = "/proc") -> str:
    try:
        return Path(f"{proc}/{pid}/comm").read_text().strip() or "?"
    except OSError:
        return "?"


def lock_owner(root: Path) -> int:
    """The pid the daemon wrote into its lock file (0 when unreadable)."""
    try:
        return int((root / LOCK_FILE).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def open_paths(pid: int, proc: str = "/proc") -> list[str]:
    """What the process ``pid`` holds open (its file descriptors' paths)."""
    out = []
    if pid <= 0:
        return out
    try:
        fds = os.listdir(f"{proc}/{pid}/fd")
    except OSError:
        return out
    for fd in fds:
        try:
            out.append(os.readlink(f"{proc}/{pid}/fd/{fd}"))
        except OSError:
            continue
    return out

