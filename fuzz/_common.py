"""Shared parts of the atheris harnesses: the run loop and seed corpora."""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def run(test_one, name: str, seeds) -> None:
    """``atheris.Setup`` + ``Fuzz`` with ``fuzz/corpus/<name>`` (seeded on first use) as
    the corpus, unless the command line names corpus dirs or files itself."""
    import atheris

    corpus = HERE / "corpus" / name
    if not corpus.exists():
        corpus.mkdir(parents=True)
        for i, data in enumerate(seeds()):
            (corpus / f"seed-{i}").write_bytes(data)
    argv = list(sys.argv)
    if not any(not a.startswith("-") for a in argv[1:]):
        argv.append(str(corpus))
    atheris.Setup(argv, test_one)
    atheris.Fuzz()


def limit_file_size(limit: int = 64 << 20) -> None:
    """Keep a decompression bomb from filling the disk: writes past ``limit`` fail with
    EFBIG (SIGXFSZ ignored) instead of growing a file."""
    import resource
    import signal

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    os.environ.setdefault("PYCONTAINERD_LOG_LEVEL", "error")
