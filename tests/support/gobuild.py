"""Go programs of the tests (``tests/support/go/<name>/``: source, ``go.mod`` and ``go.sum``
only), built with ``go build`` from the Go module proxy into a cache outside the clone:
``/var/cache/pycontainerd-tools/go/<name>-<hash of the source>``. A binary is built once per
source version and machine (a file lock keeps parallel sessions from building it twice);
nothing built is ever committed.

``bench/`` uses :func:`go_program` too. Kubernetes' tools (crictl, critest, kubelet) are
built elsewhere (``.ci/go-tools``); this is only for our own small Go clients.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

SOURCES = Path(__file__).resolve().parent / "go"
CACHE = Path(os.environ.get("PYCONTAINERD_TOOLS_CACHE", "/var/cache/pycontainerd-tools")) / "go"
GO_CANDIDATES = ("/usr/local/go/bin/go", "go")


class GoBuildError(RuntimeError):
    pass


def go_binary() -> str:
    for candidate in GO_CANDIDATES:
        path = shutil.which(candidate)
        if path:
            return path
    raise GoBuildError("no Go toolchain: install Go (the README's tools step puts it in /usr/local/go)")


def source_hash(name: str) -> str:
    """sha256 over the program's files (names and contents), first 16 hex digits."""
    h = hashlib.sha256()
    src = SOURCES / name
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        h.update(path.relative_to(src).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def go_program(name: str, timeout: float = 900) -> str:
    """The path of ``tests/support/go/<name>`` built for this source version (built now when
    missing). Raises :class:`GoBuildError` with go's output when the build fails."""
    binary = CACHE / f"{name}-{source_hash(name)}"
    if binary.exists():
        return str(binary)
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if binary.exists():  # built by another session while we waited
            return str(binary)
        tmp = binary.with_name(f".{binary.name}.{os.getpid()}")
        env = dict(os.environ, CGO_ENABLED="0", GOFLAGS="-mod=readonly -buildvcs=false")
        r = subprocess.run([go_binary(), "build", "-trimpath", "-o", str(tmp), "."], cwd=SOURCES / name, env=env,
                           capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            tmp.unlink(missing_ok=True)
            raise GoBuildError(f"go build {name}: {r.stderr.strip()[-3000:]}")
        os.rename(tmp, binary)
    return str(binary)
