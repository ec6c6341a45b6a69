"""Small whole-file reads and writes with ``os.open``/``os.read``/``os.write``.

The shim reads and writes many small files (``config.json``, pid files, cgroup and
``/proc`` files, ``options.json``, its address). ``open()`` builds a buffered reader or a
text wrapper with its codec objects for each one; in a shim forked from the zygote that
touches (and so copies) pages shared with every other shim — measured at 100-200 KiB of
private memory per shim for the first text-mode ``open()``. These helpers do the same with
plain system calls. Errors are :class:`OSError`, as from ``open()``.
"""

from __future__ import annotations

import os

_CHUNK = 1 << 16


def read(path: str, offset: int = 0) -> bytes:
    """The content of ``path`` from byte ``offset`` on."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if offset:
            os.lseek(fd, offset, os.SEEK_SET)
        chunks = []
        while True:
            data = os.read(fd, _CHUNK)
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_text(path: str) -> str:
    """The content of ``path`` decoded as UTF-8 (undecodable bytes replaced)."""
    return read(path).decode(errors="replace")


def write(path: str, data: bytes | str, *, append: bool = False, create: bool = True, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` (truncated first unless ``append``)."""
    flags = os.O_WRONLY | os.O_CLOEXEC | (os.O_APPEND if append else os.O_TRUNC) | (os.O_CREAT if create else 0)
    buf = memoryview(data.encode() if isinstance(data, str) else data)
    fd = os.open(path, flags, mode)
    try:
        while buf:
            buf = buf[os.write(fd, buf):]
    finally:
        os.close(fd)
