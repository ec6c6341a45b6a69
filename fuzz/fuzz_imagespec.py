"""atheris harness: manifest / index / config / descriptor parsing of the pull path
(:mod:`pycontainerd.imagespec`, :mod:`pycontainerd.remotes.fetch`, ``Descriptor.from_dict``)
on arbitrary bytes. A finding is any exception other than our typed errors.

    .venv/bin/python fuzz/fuzz_imagespec.py -max_total_time=60  # corpus: fuzz/corpus/imagespec
"""

import json

import atheris

from _common import run

with atheris.instrument_imports(include=["pycontainerd"]):
    from pycontainerd import imagespec
    from pycontainerd.descriptor import Descriptor
    from pycontainerd.errdefs import ContainerdError
    from pycontainerd.remotes import fetch, platforms

MEDIA_TYPES = ["application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.v2+json",
               "application/vnd.docker.distribution.manifest.list.v2+json"]
DIGEST = "sha256:" + "a" * 64


def test_one(data: bytes) -> None:
    media_type = MEDIA_TYPES[data[0] % len(MEDIA_TYPES)] if data else MEDIA_TYPES[0]
    body = data[1:]
    desc = Descriptor(media_type, DIGEST, len(body))
    for parse in (lambda: imagespec.parse_json(body, "manifest"), lambda: fetch.validate_media_type(body, media_type)):
        try:
            doc = parse()
        except ContainerdError:
            continue
        for use in (lambda: imagespec.manifest_children(doc), lambda: imagespec.index_children(doc),
                    lambda: imagespec.children_labels(True, doc), lambda: imagespec.children_labels(False, doc),
                    lambda: imagespec.chain_ids(imagespec.diff_ids(doc)), lambda: fetch.children(desc, doc),
                    lambda: fetch.select_platforms(imagespec.index_children(doc), platforms.default(), 0),
                    lambda: {d: 1 for d in fetch.children(desc, doc)}):
            try:
                use()
            except ContainerdError:
                pass


def seeds():
    d = {"mediaType": MEDIA_TYPES[0], "digest": DIGEST, "size": 3,
         "platform": {"os": "linux", "architecture": "amd64", "os.features": ["x"]}, "urls": ["u"],
         "annotations": {"a": "b"}}
    yield b"\x00" + json.dumps({"schemaVersion": 2, "config": d, "layers": [d, d]}).encode()
    yield b"\x01" + json.dumps({"schemaVersion": 2, "manifests": [d, dict(d, platform={"os": "linux",
                                                                                        "architecture": "arm64"})]}).encode()
    yield b"\x00" + json.dumps({"rootfs": {"type": "layers", "diff_ids": [DIGEST, DIGEST]}}).encode()


if __name__ == "__main__":
    run(test_one, "imagespec", seeds)
