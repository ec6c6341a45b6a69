"""Paths inside a root directory, never leaving it: how a layer names what it touches.

Every entry name, hardlink target and whiteout target of a layer is resolved *inside* root
the way containerd's ``fs.RootPath`` does (and openat2's ``RESOLVE_IN_ROOT``): the name is
cleaned lexically (``..`` stops at root, a leading ``/`` means root), then symlinks met on
the way — absolute or relative, planted by a lower layer or by an earlier entry of this one
— are followed by *our* code, with an absolute target restarting at root and ``..`` never
going above it. The kernel never follows a symlink for us: the walk goes component by
component with directory fds opened ``O_PATH|O_DIRECTORY|O_NOFOLLOW``; callers then act on
the entry itself with ``*at`` calls on the parent fd that do not follow a final symlink.
Refused with :class:`~pycontainerd.errdefs.InvalidArgument`: more than 255 symlinks on one
path, a path (as resolved) longer than ``PATH_MAX``, a parent that is not a directory.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence

from pycontainerd.errdefs import InvalidArgument, quote

PATH_MAX = 4096
MAX_LINKS = 255
O_DIR = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
O_DIR_READ = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Missing(Exception):
    """A component of the path does not exist."""


def clean_name(name: str) -> list[str]:
    """The components of ``name`` cleaned as if it were rooted at ``/`` (Go's
    ``filepath.Clean(filepath.Join("/", name))``): ``..`` never goes above the root."""
    out: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out:
                out.pop()
            continue
        out.append(part)
    return out


def clean_link_target(target: str) -> list[str]:
    """Lexically clean a symlink target, keeping leading ``..`` (resolved against the real
    directory holding the link, as containerd's ``filepath.Join(dir, target)``)."""
    out: list[str] = []
    for part in target.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out and out[-1] != "..":
                out.pop()
            else:
                out.append(part)
            continue
        out.append(part)
    return out


def proc_path(fd: int, name: str | None = None) -> str:
    """The /proc/self/fd path of ``fd`` (or of ``name`` in it), to reach an fd by path."""
    return f"/proc/self/fd/{fd}" if name is None else f"/proc/self/fd/{fd}/{name}"


def resolve_dir(root_fd: int, comps: Sequence[str], *, mkdir=None, replace=None) -> tuple[int, tuple[str, ...]]:
    """Resolve ``comps`` (clean components) to a directory inside the root ``root_fd``.

    Symlinks are followed by this function, inside root (see module doc); the kernel never
    follows one. Returns a new ``O_PATH`` fd (the caller closes it) and the real path as
    components. A missing component raises ``Missing`` unless ``mkdir(dir_fd, name, real)``
    is given, which must create it as a directory. A component that is neither a directory
    nor a symlink is an error unless ``replace(dir_fd, name, real)`` returns True after
    turning it into a directory.

    Raises:
        InvalidArgument: a component is not a directory, too many symlinks, path too long.
    """
    todo = list(reversed(comps))
    real: list[str] = []
    real_len = 0
    links = 0
    cur = os.dup(root_fd)
    try:
        while todo:
            c = todo.pop()
            if c == "..":
                if real:
                    parent = os.open("..", O_DIR, dir_fd=cur)
                    os.close(cur)
                    cur = parent
                    real_len -= len(real.pop()) + 1
                continue
            try:
                st = os.stat(c, dir_fd=cur, follow_symlinks=False)
            except FileNotFoundError:
                if mkdir is None:
                    raise Missing("/".join([*real, c])) from None
                mkdir(cur, c, (*real, c))
                st = os.stat(c, dir_fd=cur, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                links += 1
                if links > MAX_LINKS:
                    raise InvalidArgument(f"{quote('/'.join(comps))}: too many levels of symbolic links")
                target = os.readlink(c, dir_fd=cur)
                if target.startswith("/"):
                    os.close(cur)
                    cur = os.dup(root_fd)
                    real.clear()
                    real_len = 0
                todo.extend(reversed(clean_link_target(target)))
                continue
            if not stat.S_ISDIR(st.st_mode):
                if replace is None or not replace(cur, c, (*real, c)):
                    raise InvalidArgument(f"{quote('/'.join([*real, c]))}: not a directory")
            nxt = os.open(c, O_DIR, dir_fd=cur)
            os.close(cur)
            cur = nxt
            real.append(c)
            real_len += len(c) + 1
            if real_len > PATH_MAX:
                raise InvalidArgument(f"{quote('/'.join(comps)[:200])}: file name too long")
        return cur, tuple(real)
    except BaseException:
        os.close(cur)
        raise


def remove_all(dir_fd: int, name: str) -> None:
    """Remove ``name`` in ``dir_fd`` and everything below it, never following a symlink.

    Iterative (no recursion limit) and holding one directory fd at a time: it descends with
    ``O_NOFOLLOW`` opens and climbs back with ``..`` of a directory it opened itself.
    """
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=dir_fd)
        return
    cur = os.open(name, O_DIR_READ, dir_fd=dir_fd)
    # each level: (name of this dir in its parent, names still to visit)
    stack: list[tuple[str, list[str]]] = [(name, os.listdir(cur))]
    try:
        while stack:
            dname, pending = stack[-1]
            descended = False
            while pending:
                child = pending.pop()
                cst = os.stat(child, dir_fd=cur, follow_symlinks=False)
                if stat.S_ISDIR(cst.st_mode):
                    nxt = os.open(child, O_DIR_READ, dir_fd=cur)
                    os.close(cur)
                    cur = nxt
                    stack.append((child, os.listdir(cur)))
                    descended = True
                    break
                os.unlink(child, dir_fd=cur)
            if descended:
                continue
            stack.pop()
            if stack:
                up = os.open("..", O_DIR_READ, dir_fd=cur)
                os.close(cur)
                cur = up
                os.rmdir(dname, dir_fd=cur)
    finally:
        os.close(cur)
    os.rmdir(name, dir_fd=dir_fd)


# --- the applier -------------------------------------------------------------------------