"""Where a process's cgroups are: the cgroup v1 and v2 mounts of this host (from
``/proc/self/mountinfo``) and the directory of a pid's cgroup under them. Standard library
only: the shim reads its container's cgroup with it, the CRI plugin the pressure files of a
pod's."""

from __future__ import annotations

import os

from . import files


def read(path: str) -> str:
    try:
        return files.read_text(path)
    except OSError:
        return ""


def mounts() -> tuple[dict[str, tuple[str, str]], tuple[str, str] | None]:
    """``({v1 controller: (mount root, mount point)}, (v2 root, v2 mount point) or None)``."""
    v1_mounts: dict[str, tuple[str, str]] = {}
    v2_mount = None
    for line in read("/proc/self/mountinfo").splitlines():
        pre, _, post = line.partition(" - ")
        fields, post_f = pre.split(), post.split()
        if len(post_f) < 3:
            continue
        fstype, opts = post_f[0], post_f[2].split(",")
        root, mp = fields[3], fields[4].encode().decode("unicode_escape")
        if fstype == "cgroup2" and v2_mount is None:
            v2_mount = (root, mp)
        elif fstype == "cgroup":
            for o in opts:
                name = o[5:] if o.startswith("name=") else o
                if o.startswith("name=") or o in V1_CONTROLLERS:
                    v1_mounts.setdefault(name, (root, mp))
    return v1_mounts, v2_mount


V1_CONTROLLERS = {"cpu", "cpuacct", "cpuset", "memory", "blkio", "pids", "devices", "freezer",
                   "hugetlb", "net_cls", "net_prio", "perf_event", "rdma"}


def join(mount: tuple[str, str], path: str) -> str:
    """The directory of cgroup ``path`` under a mount whose root in the hierarchy is
    ``root``; a path outside that root is taken from the mount point as is."""
    root, mp = mount
    root = root.rstrip("/")
    if root and (path == root or path.startswith(root + "/")):
        rel = path[len(root):].lstrip("/")
    else:
        rel = path.lstrip("/")
    return os.path.normpath(os.path.join(mp, rel))


def unified_dir(pid: int) -> str:
    """The cgroup v2 directory of ``pid`` — on a hybrid host too, where the unified hierarchy
    holds no controllers but does hold the pressure (PSI) files; "" when there is none."""
    path = next((line[3:] for line in read(f"/proc/{pid}/cgroup").splitlines() if line.startswith("0::")), None)
    if path is None:
        return ""
    _, v2 = mounts()
    return join(v2, path) if v2 is not None else ""
