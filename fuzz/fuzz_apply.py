"""atheris harness: layer apply (:func:`pycontainerd.archive.apply_layer`) of arbitrary
bytes — plain tar, gzip or zstd as the magic says — into a fresh root beside a canary
directory. A finding is any exception other than our typed errors, or any change to the
canary or the directory holding root and canary.

    .venv/bin/python fuzz/fuzz_apply.py -max_total_time=60      # corpus: fuzz/corpus/apply
"""

import atexit
import errno
import io
import os
import shutil
import sys
import tempfile

import atheris

from _common import limit_file_size, run

with atheris.instrument_imports(include=["pycontainerd"]):
    from pycontainerd.archive import apply_layer
    from pycontainerd.errdefs import ContainerdError

BASE = tempfile.mkdtemp(prefix="pcd-fuzz-apply-")
atexit.register(shutil.rmtree, BASE, True)
ROOT = os.path.join(BASE, "root")
OUTSIDE = os.path.join(BASE, "outside")
os.mkdir(OUTSIDE)
with open(os.path.join(OUTSIDE, "victim"), "wb") as f:
    f.write(b"precious\n")
os.symlink("victim", os.path.join(OUTSIDE, "link"))


def canary() -> tuple:
    out = [sorted(os.listdir(BASE))]
    for name in sorted(os.listdir(OUTSIDE)):
        st = os.lstat(os.path.join(OUTSIDE, name))
        out.append((name, st.st_ino, st.st_mode, st.st_uid, st.st_size, st.st_mtime_ns, st.st_nlink))
    with open(os.path.join(OUTSIDE, "victim"), "rb") as f:
        out.append(f.read())
    return tuple(out)


BEFORE = None


def test_one(data: bytes) -> None:
    global BEFORE
    if os.path.lexists(ROOT):
        shutil.rmtree(ROOT)
    os.mkdir(ROOT)
    if BEFORE is None:
        BEFORE = canary()
    try:
        apply_layer(io.BytesIO(data), ROOT, overlay_whiteouts=os.geteuid() == 0, sync=False)
    except ContainerdError:
        pass
    except OSError as exc:
        if exc.errno != errno.EFBIG:  # the harness's file size limit, not a finding
            raise
    after = canary()
    if after != BEFORE:
        raise AssertionError(f"escaped the root: {BEFORE} -> {after}")


def seeds():
    sys.path.insert(0, str(__import__("_common").REPO))
    from tests.support.layers import Layer, gz, zst

    plain = (Layer().dir("a").file("a/f", b"x" * 100).symlink("l", "../outside").file("l/victim", b"pwn")
             .hardlink("h", "a/f").file("a/.wh.g").file(".wh..wh..opq").symlink("abs", OUTSIDE).tar())
    yield plain
    yield gz(plain)
    yield zst(plain)
    yield Layer(format=1).file("x" * 120, b"gnu long name").tar()  # tarfile.GNU_FORMAT


if __name__ == "__main__":
    limit_file_size()
    run(test_one, "apply", seeds)
