"""The C library calls the shim (and the core's mounts) make through :mod:`ctypes`
(``prctl``, ``mount``, ``umount2``, ``malloc_trim``, ``inotify``, ``unshare``, ``syscall``), resolved once at import.

Loaded in the zygote before it forks, so every shim shares these objects instead of
building its own ``CDLL`` (a new class per instance) and function pointers — pages a shim
writes are private to it (its USS), pages it only reads stay shared.
"""

from __future__ import annotations

import ctypes
import os

_libc = ctypes.CDLL(None, use_errno=True)  # the already-loaded libc: no find_library (it forks ldconfig)

prctl = _libc.prctl
mount = _libc.mount
mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p)
umount2 = _libc.umount2
umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)
malloc_trim = _libc.malloc_trim
inotify_init1 = _libc.inotify_init1
inotify_add_watch = _libc.inotify_add_watch
unshare = _libc.unshare
syscall = _libc.syscall  # open_tree, move_mount, mount_setattr (no libc wrappers): see sysutil.idmap
syscall.restype = ctypes.c_long

PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
PR_SET_CHILD_SUBREAPER = 36


def check(ret: int, what: str) -> int:
    """``ret``, or :class:`OSError` with ``errno`` when a call returned -1."""
    if ret == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


def trim() -> None:
    """Give the heap's free pages back to the kernel (``malloc_trim(0)``)."""
    malloc_trim(0)
