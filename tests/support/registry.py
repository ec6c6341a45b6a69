"""A real OCI distribution registry and real images, as session fixtures.

Loaded by ``tests/conftest.py`` (``pytest_plugins``), so every test module can ask for:

``registry``
    Debian's ``docker-registry`` on ``127.0.0.1:<free port>``, no auth, deletes enabled,
    filesystem storage in a temp dir. A :class:`Registry` (``.host``, ``.url``).
``registry_auth``
    A second one with htpasswd basic auth; ``.username`` / ``.password`` are the good
    credentials.
``busybox_image``
    Real images built from Debian's ``busybox-static`` with ``umoci`` and pushed into
    ``registry`` with ``skopeo`` (no internet), a :class:`BusyboxImages`:

    ========================================  ==============================================
    ``HOST/library/busybox:latest``           OCI manifest, one gzip layer (``.oci``)
    ``HOST/library/busybox-multi:latest``     OCI index: a linux/arm64/v8 placeholder first,
                                              then this machine's platform (``.multi``)
    ``HOST/library/busybox-v2s2:latest``      docker schema2 manifest (``.v2s2``)
    ``HOST/library/busybox-zstd:latest``      OCI manifest with a ``tar+zstd`` layer (``.zstd``)
    ========================================  ==============================================

    All digests are read back from the registry, not computed by our own code.

Needs the Debian packages ``docker-registry skopeo umoci busybox-static`` (the project's
install step installs them; tests never run apt) and ``bcrypt`` from the dev extras.
Every process started here is killed and reaped, and every temp dir removed, at session end,
also when tests fail.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import platform
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pycontainerd.testing import (  # noqa: F401 - re-exported for the tests
    BUSYBOX_APPLETS,
    Registry,
    add_busybox,
    build_image_layout,
    native_platform,
    require_tool,
    run_tool,
    start_registry,
)

MANIFEST_ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"

def _format_platform(os_: str, arch: str, variant: str) -> str:
    return "/".join(p for p in (os_, arch, variant) if p)


# --------------------------------------------------------------------------------------
# registry


@pytest.fixture(scope="session")
def registry():
    """A real registry on 127.0.0.1 without auth (see module doc)."""
    reg = start_registry()
    try:
        yield reg
    finally:
        reg.stop()


@pytest.fixture(scope="session")
def registry_auth():
    """A real registry with htpasswd basic auth; ``.username``/``.password`` get in."""
    reg = start_registry(username="pcduser", password="pcd-secret-pw")
    try:
        yield reg
    finally:
        reg.stop()


# --------------------------------------------------------------------------------------
# images


@dataclass(frozen=True)
class PushedImage:
    """One image in the registry, digests as the registry serves them.

    ``digest``/``media_type``/``size`` describe the target (what a tag resolves to: a manifest
    or an index). ``manifest_digest``, ``config_digest`` and ``layers`` are those of this
    machine's platform (for an index: the child manifest picked for this machine).
    """

    ref: str
    repository: str
    tag: str
    digest: str
    media_type: str
    size: int
    manifest_digest: str
    manifest_media_type: str
    config_digest: str
    config_media_type: str
    layer_digests: tuple[str, ...]
    layer_media_types: tuple[str, ...]

    @property
    def ref_by_digest(self) -> str:
        host = self.ref.split("/", 1)[0]
        return f"{host}/{self.repository}@{self.digest}"


@dataclass(frozen=True)
class BusyboxImages:
    """The busybox images pushed to the ``registry`` fixture (see module doc).

    Shortcuts ``ref``, ``digest``, ``manifest_digest``, ``config_digest`` are those of ``oci``.
    ``layout`` is the OCI image layout they were built in (tags ``latest``, ``other``,
    ``multi``), kept for the session; ``layout.parent / "layout-zstd"`` holds the zstd copy.
    """

    registry: Registry
    platform: str
    os: str
    architecture: str
    variant: str
    oci: PushedImage
    multi: PushedImage
    v2s2: PushedImage
    zstd: PushedImage | None
    other_platform: str
    other_manifest_digest: str
    layout: Path
    notes: tuple[str, ...] = field(default=())

    @property
    def ref(self) -> str:
        return self.oci.ref

    @property
    def digest(self) -> str:
        return self.oci.digest

    @property
    def manifest_digest(self) -> str:
        return self.oci.manifest_digest

    @property
    def config_digest(self) -> str:
        return self.oci.config_digest


_tool = require_tool
_run = run_tool


def _build_layout(work: Path, os_: str, arch: str, variant: str, other: tuple[str, str, str]) -> Path:
    """Build the OCI layout: tag ``latest`` (busybox), ``other`` (a tiny placeholder for the
    other platform) and ``multi`` (an index of both, ``other`` listed first)."""
    layout = work / "layout"
    build_image_layout(layout, "latest", add_busybox, ["--config.cmd", "sh"], platform_=(os_, arch, variant))

    # the placeholder for the other platform: one tiny layer
    def placeholder(rootfs: Path) -> None:
        (rootfs / "README").write_text(f"placeholder image for {_format_platform(*other)}\n")

    build_image_layout(layout, "other", placeholder, platform_=other)
    _run(_tool("umoci", "umoci"), "gc", "--layout", str(layout))

    # the index, written by hand (umoci has no command for it)
    index_path = layout / "index.json"
    top = json.loads(index_path.read_text())
    by_tag = {m["annotations"]["org.opencontainers.image.ref.name"]: m for m in top["manifests"]}

    def entry(tag: str, plat: tuple[str, str, str]) -> dict:
        m = by_tag[tag]
        p = {"architecture": plat[1], "os": plat[0]}
        if plat[2]:
            p["variant"] = plat[2]
        return {"mediaType": m["mediaType"], "digest": m["digest"], "size": m["size"], "platform": p}

    multi = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [entry("other", other), entry("latest", (os_, arch, variant))],
    }
    blob = json.dumps(multi, separators=(",", ":")).encode()
    hexd = hashlib.sha256(blob).hexdigest()
    (layout / "blobs" / "sha256" / hexd).write_bytes(blob)
    top["manifests"].append(
        {
            "mediaType": OCI_INDEX,
            "digest": f"sha256:{hexd}",
            "size": len(blob),
            "annotations": {"org.opencontainers.image.ref.name": "multi"},
        }
    )
    index_path.write_text(json.dumps(top))
    return layout


def read_back(reg: Registry, repository: str, tag: str, native: tuple[str, str, str]) -> PushedImage:
    """Describe ``repository:tag`` from what ``reg`` serves (walks an index to ``native``)."""
    with reg.client() as c:
        r = c.get(f"/v2/{repository}/manifests/{tag}", headers={"Accept": MANIFEST_ACCEPT})
        r.raise_for_status()
        media_type = r.headers["content-type"].split(";")[0]
        digest = r.headers["docker-content-digest"]
        assert digest == "sha256:" + hashlib.sha256(r.content).hexdigest()
        body = r.json()
        manifest_digest, manifest_media_type, manifest = digest, media_type, body
        if "manifests" in body:
            want = {"os": native[0], "architecture": native[1]}
            for m in body["manifests"]:
                p = m.get("platform", {})
                if p.get("os") == want["os"] and p.get("architecture") == want["architecture"]:
                    manifest_digest, manifest_media_type = m["digest"], m["mediaType"]
                    break
            else:  # pragma: no cover - we built it
                raise AssertionError(f"no {want} in {body}")
            r2 = c.get(f"/v2/{repository}/manifests/{manifest_digest}", headers={"Accept": MANIFEST_ACCEPT})
            r2.raise_for_status()
            manifest = r2.json()
    return PushedImage(
        ref=f"{reg.host}/{repository}:{tag}",
        repository=repository,
        tag=tag,
        digest=digest,
        media_type=media_type,
        size=len(r.content),
        manifest_digest=manifest_digest,
        manifest_media_type=manifest_media_type,
        config_digest=manifest["config"]["digest"],
        config_media_type=manifest["config"]["mediaType"],
        layer_digests=tuple(layer["digest"] for layer in manifest["layers"]),
        layer_media_types=tuple(layer["mediaType"] for layer in manifest["layers"]),
    )


def build_and_push_busybox(reg: Registry, work: Path) -> BusyboxImages:
    """Build the busybox layout under ``work`` and push every variant to ``reg``."""
    skopeo = _tool("skopeo", "skopeo")
    os_, arch, variant = native_platform()
    other = ("linux", "arm64", "v8") if arch != "arm64" else ("linux", "amd64", "")
    layout = _build_layout(work, os_, arch, variant, other)
    native = (os_, arch, variant)
    dest = f"docker://{reg.host}/library"
    tls = "--dest-tls-verify=false"
    notes: list[str] = []

    _run(skopeo, "copy", "--quiet", tls, f"oci:{layout}:latest", f"{dest}/busybox:latest")
    _run(skopeo, "copy", "--quiet", "--all", tls, f"oci:{layout}:multi", f"{dest}/busybox-multi:latest")
    _run(skopeo, "copy", "--quiet", "--format", "v2s2", tls, f"oci:{layout}:latest", f"{dest}/busybox-v2s2:latest")

    # skopeo 1.9 does not recompress a gzip layer when the destination is a registry
    # (--dest-compress-format zstd is ignored there); it does when writing an OCI layout,
    # so recompress into a second layout (in the same layout skopeo would reuse the gzip
    # blob), then push that as it is.
    zstd: PushedImage | None = None
    zstd_layout = work / "layout-zstd"
    r = subprocess.run(
        [skopeo, "copy", "--quiet", "--dest-compress-format", "zstd", f"oci:{layout}:latest", f"oci:{zstd_layout}:latest"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    if r.returncode == 0:
        _run(skopeo, "copy", "--quiet", tls, f"oci:{zstd_layout}:latest", f"{dest}/busybox-zstd:latest")
        zstd = read_back(reg, "library/busybox-zstd", "latest", native)
        if not all(mt.endswith("+zstd") for mt in zstd.layer_media_types):
            notes.append(f"skopeo did not produce zstd layers: {zstd.layer_media_types}")
            zstd = None
    else:
        notes.append(f"skopeo cannot write zstd layers: {r.stderr.strip()}")

    oci = read_back(reg, "library/busybox", "latest", native)
    multi = read_back(reg, "library/busybox-multi", "latest", native)
    with reg.client() as c:
        index = c.get(
            f"/v2/library/busybox-multi/manifests/{multi.digest}", headers={"Accept": MANIFEST_ACCEPT}
        ).json()
    other_digest = next(m["digest"] for m in index["manifests"] if m["digest"] != multi.manifest_digest)
    return BusyboxImages(
        registry=reg,
        platform=_format_platform(*native),
        os=os_,
        architecture=arch,
        variant=variant,
        oci=oci,
        multi=multi,
        v2s2=read_back(reg, "library/busybox-v2s2", "latest", native),
        zstd=zstd,
        other_platform=_format_platform(*other),
        other_manifest_digest=other_digest,
        layout=layout,
        notes=tuple(notes),
    )


@pytest.fixture(scope="session")
def busybox_image(registry) -> BusyboxImages:
    """busybox images built from ``/bin/busybox`` and pushed to ``registry`` (see module doc)."""
    work = Path(tempfile.mkdtemp(prefix="pcd-busybox-"))
    try:
        yield build_and_push_busybox(registry, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def basic_auth_header(username: str, password: str) -> str:
    """``Basic <base64>`` for tests that build requests by hand."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
