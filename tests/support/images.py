"""A multi-layer image with whiteouts and an opaque directory, built by umoci from layer
tarballs written here with Python's tarfile, pushed by skopeo to the test registry — and
the reference tree ``umoci unpack`` makes of it, to compare unpacks with.

Layers (later ones change earlier ones):

1. ``bin/busybox`` (the real one) + ``bin/sh`` symlink, ``etc/hostname``, ``opt/keep/{a,b}``,
   ``opt/gone/x``, ``f1``, ``f2``, a hardlink ``f2.link`` → ``f2``, a symlink ``lnk`` → ``f2``.
2. ``.wh.f1`` (delete f1), ``opt/.wh.gone`` (delete a directory), ``opt/keep/.wh..wh..opq``
   + ``opt/keep/c`` (opaque: a and b vanish), ``f2`` rewritten, ``f3`` added.
3. ``f1`` recreated with new content, ``suid`` with mode 04755, ``deep/er/dir/file``.
"""

from __future__ import annotations

import io
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.registry import PushedImage, _run, _tool, native_platform, read_back

MTIME = 1_600_000_000


def _add(tf: tarfile.TarFile, name: str, data: bytes | None = None, *, mode: int = 0o644,
         type_: bytes = tarfile.REGTYPE, linkname: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type = type_
    info.mode = mode
    info.mtime = MTIME
    info.linkname = linkname
    if data is not None:
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    else:
        tf.addfile(info)


def _layer(path: Path, entries) -> Path:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for entry in entries:
            _add(tf, *entry[0], **entry[1])
    return path


def D(name):  # a directory entry
    return ((name,), {"mode": 0o755, "type_": tarfile.DIRTYPE})


def F(name, data: bytes, mode=0o644):
    return ((name, data), {"mode": mode})


def L(name, target, hard=False):
    return ((name,), {"type_": tarfile.LNKTYPE if hard else tarfile.SYMTYPE, "linkname": target, "mode": 0o777})


def push_one_layer_image(registry, work: Path, name: str, data: bytes) -> str:
    """Push ``HOST/library/<name>:latest``: one layer holding ``payload.bin`` = ``data``
    (gzip, by umoci), copied to ``registry`` by skopeo. Returns the reference."""
    umoci, skopeo = _tool("umoci", "umoci"), _tool("skopeo", "skopeo")
    os_, arch, _ = native_platform()
    layout = work / f"layout-{name}"
    layer = _layer(work / f"{name}.tar", [F("payload.bin", data)])
    _run(umoci, "init", "--layout", str(layout))
    _run(umoci, "new", "--image", f"{layout}:{name}")
    _run(umoci, "raw", "add-layer", "--image", f"{layout}:{name}", str(layer))
    _run(umoci, "config", "--image", f"{layout}:{name}", "--os", os_, "--architecture", arch)
    _run(skopeo, "copy", "--quiet", "--dest-tls-verify=false", f"oci:{layout}:{name}",
         f"docker://{registry.host}/library/{name}:latest")
    return f"{registry.host}/library/{name}:latest"


@dataclass(frozen=True)
class LayeredImage:
    ref: str
    pushed: PushedImage
    reference_rootfs: Path


def build_layered(work: Path, registry) -> LayeredImage:
    umoci, skopeo = _tool("umoci", "umoci"), _tool("skopeo", "skopeo")
    os_, arch, variant = native_platform()
    layout = work / "layout"
    l1 = _layer(work / "l1.tar", [
        D("bin"), F("bin/busybox", Path("/bin/busybox").read_bytes(), 0o755), L("bin/sh", "busybox"),
        D("etc"), F("etc/hostname", b"layered\n"),
        D("opt"), D("opt/keep"), F("opt/keep/a", b"a\n"), F("opt/keep/b", b"b\n"),
        D("opt/gone"), F("opt/gone/x", b"x\n"),
        F("f1", b"one\n"), F("f2", b"two\n"), L("f2.link", "f2", hard=True), L("lnk", "f2"),
    ])
    l2 = _layer(work / "l2.tar", [
        F(".wh.f1", b""), D("opt"), F("opt/.wh.gone", b""),
        D("opt/keep"), F("opt/keep/.wh..wh..opq", b""), F("opt/keep/c", b"c\n"),
        F("f2", b"two, rewritten\n"), F("f3", b"three\n"),
    ])
    l3 = _layer(work / "l3.tar", [
        F("f1", b"one again\n", 0o600), F("suid", b"#!/bin/sh\n", 0o4755),
        D("deep"), D("deep/er"), D("deep/er/dir"), F("deep/er/dir/file", b"deep\n"),
    ])
    _run(umoci, "init", "--layout", str(layout))
    _run(umoci, "new", "--image", f"{layout}:layered")
    for layer in (l1, l2, l3):
        _run(umoci, "raw", "add-layer", "--image", f"{layout}:layered", str(layer))
    cfg = ["--config.cmd", "sh", "--os", os_, "--architecture", arch]
    _run(umoci, "config", "--image", f"{layout}:layered", *cfg)
    _run(skopeo, "copy", "--quiet", "--dest-tls-verify=false", f"oci:{layout}:layered",
         f"docker://{registry.host}/library/layered:latest")
    bundle = work / "bundle"
    _run(umoci, "unpack", "--image", f"{layout}:layered", str(bundle))
    pushed = read_back(registry, "library/layered", "latest", (os_, arch, variant))
    return LayeredImage(f"{registry.host}/library/layered:latest", pushed, bundle / "rootfs")


@pytest.fixture(scope="session")
def layered_image(registry) -> LayeredImage:
    work = Path(tempfile.mkdtemp(prefix="pcd-layered-"))
    try:
        yield build_layered(work, registry)
    finally:
        shutil.rmtree(work, ignore_errors=True)
