"""Unix socket paths the daemon listens on (gRPC, ttrpc, the debug and metrics endpoints)."""

from __future__ import annotations

import errno
import os
import socket
import stat
from pathlib import Path

from ..errdefs import FailedPrecondition, InvalidArgument
from ..log import get_logger

log = get_logger("server")


def prepare_unix_socket(path: Path, setting: str = "--address") -> None:
    """Make ``path`` free for a new listener; ``setting`` names where the path came from
    (a flag or config key such as ``[debug] address``) in error messages.

    Creates the parent directory (0711). A socket file nobody listens on is removed.

    Raises:
        FailedPrecondition: a daemon answers on ``path``, or ``path`` is not a socket.
        InvalidArgument: the path is too long for a unix socket address.
    """
    if len(os.fsencode(path)) > 107:
        raise InvalidArgument(f"socket path {path} is longer than 107 bytes, the limit of a unix socket "
                              f"address; choose a shorter {setting}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o711)
        if not path.parent.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
    except OSError as exc:
        reason = "a file is in the way" if isinstance(exc, (FileExistsError, NotADirectoryError)) else exc.strerror
        raise InvalidArgument(f"{setting} {path}: cannot make its folder {path.parent}: {reason}") from exc
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise FailedPrecondition(f"{path} exists and is not a socket; refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(2)
        probe.connect(str(path))
    except OSError as exc:
        if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            raise FailedPrecondition(f"cannot probe socket {path}: {exc.strerror}") from exc
        log.info("removing stale socket", path=str(path))
        path.unlink(missing_ok=True)
        return
    finally:
        probe.close()
    raise FailedPrecondition(
        f"another daemon is already serving on {path}; stop it or choose another {setting}"
    )
