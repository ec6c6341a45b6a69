"""Fuzzing manifest, index, config and descriptor parsing (what a registry or a client
hands us): arbitrary bytes and arbitrary JSON reach only our typed errors.

Targets: :func:`pycontainerd.imagespec.parse_json`, ``manifest_children``,
``index_children``, ``children_labels``, ``diff_ids``; :class:`~pycontainerd.descriptor.Descriptor`
and ``Platform`` ``from_dict``, ``parse_digest``; the pull path's
:func:`pycontainerd.remotes.fetch.validate_media_type`, and
:mod:`pycontainerd.images.walk`'s ``children`` and ``select_platforms``; ``remotes.platforms.parse``. Documents are drawn both as free JSON
and as *near-valid* manifests/indexes with fields swapped for hostile values, so that the
deep code is reached. ``FUZZ_EXAMPLES=N`` scales the example counts.
"""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pycontainerd import imagespec
from pycontainerd.descriptor import Descriptor, Platform, parse_digest
from pycontainerd.errdefs import ContainerdError
from pycontainerd.images import walk
from pycontainerd.remotes import fetch, mediatypes, platforms


def fuzz_settings(default: int):
    n = int(os.environ.get("FUZZ_EXAMPLES", "0") or 0)
    return settings(max_examples=n or default, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


DIGEST = "sha256:" + "a" * 64
MEDIA_TYPES = [mediatypes.OCI_IMAGE_MANIFEST, mediatypes.OCI_IMAGE_INDEX,
               "application/vnd.docker.distribution.manifest.v2+json",
               "application/vnd.docker.distribution.manifest.list.v2+json",
               mediatypes.OCI_IMAGE_CONFIG, "", "text/plain"]

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False),
                    st.text(max_size=30), st.sampled_from([DIGEST, "sha512:" + "b" * 128, "sha256:", "md5:00"]))
JSON = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                     st.dictionaries(st.text(max_size=12), inner, max_size=4)),
                    max_leaves=25)
HOSTILE = st.one_of(JSON, st.builds(list), st.builds(dict), st.just(-1), st.just("x" * 5000))  # fresh [] and {}: a shared one can be assigned into itself


@st.composite
def descriptor_json(draw):
    d = {"mediaType": draw(st.sampled_from(MEDIA_TYPES)), "digest": DIGEST, "size": 7}
    if draw(st.booleans()):
        d["platform"] = {"os": "linux", "architecture": draw(st.sampled_from(["amd64", "arm64", "arm", "s390x"])),
                         "variant": draw(st.sampled_from(["", "v7", "v8"]))}
    for key in draw(st.lists(st.sampled_from(["mediaType", "digest", "size", "platform", "urls", "annotations",
                                               "os.features"]), max_size=2)):
        if key == "os.features" and isinstance(d.get("platform"), dict):
            d["platform"][key] = draw(HOSTILE)
        else:
            d[key] = draw(HOSTILE)
    return d


@st.composite
def document(draw):
    kind = draw(st.sampled_from(["manifest", "index", "config", "free"]))
    if kind == "free":
        return draw(JSON)
    if kind == "manifest":
        doc = {"schemaVersion": 2, "config": draw(descriptor_json()),
               "layers": draw(st.lists(descriptor_json(), max_size=3))}
    elif kind == "index":
        doc = {"schemaVersion": 2, "manifests": draw(st.lists(descriptor_json(), max_size=4))}
    else:
        doc = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [DIGEST]}}
    for key in draw(st.lists(st.sampled_from(["config", "layers", "manifests", "rootfs", "mediaType", "fsLayers"]),
                             max_size=2)):
        doc[key] = draw(HOSTILE)
    return doc


def exercise(data: bytes, media_type: str) -> None:
    """Every parser of the pull/unpack path on one blob; typed errors only."""
    desc = Descriptor(media_type, DIGEST, len(data))
    for step in (
        lambda: imagespec.parse_json(data, "manifest"),
        lambda: fetch.validate_media_type(data, media_type),
    ):
        try:
            doc = step()
        except ContainerdError:
            continue
        for use in (
            lambda: imagespec.manifest_children(doc),
            lambda: imagespec.index_children(doc),
            lambda: imagespec.children_labels(True, doc),
            lambda: imagespec.children_labels(False, doc),
            lambda: imagespec.diff_ids(doc),
            lambda: imagespec.chain_ids([str(d) for d in imagespec.diff_ids(doc)]),
            lambda: walk.children(desc, doc),
            lambda: walk.select_platforms(imagespec.index_children(doc), platforms.default(), 1),
            lambda: walk.select_platforms(imagespec.index_children(doc), platforms.any_of(["linux/arm64", "linux"]),
                                          0),
            lambda: [hash(d) for d in imagespec.index_children(doc)],  # descriptors are dict keys in pull
        ):
            try:
                use()
            except ContainerdError:
                pass


@fuzz_settings(400)
@given(document(), st.sampled_from(MEDIA_TYPES))
def test_fuzz_json_documents(doc, media_type):
    exercise(json.dumps(doc).encode(), media_type)


@fuzz_settings(300)
@given(st.binary(max_size=512), st.sampled_from(MEDIA_TYPES))
def test_fuzz_arbitrary_bytes(data, media_type):
    exercise(data, media_type)


@fuzz_settings(300)
@given(st.one_of(descriptor_json(), HOSTILE))
def test_fuzz_descriptor_and_platform(d):
    for step in (lambda: Descriptor.from_dict(d), lambda: Platform.from_dict(d),
                 lambda: hash(Descriptor.from_dict(d)), lambda: Descriptor.from_dict(d).to_dict()):
        try:
            step()
        except ContainerdError:
            pass


@fuzz_settings(300)
@given(st.one_of(st.text(max_size=80), st.from_regex(r"[a-z0-9+._-]{1,10}:[a-fA-F0-9=_-]{0,130}", fullmatch=True)))
def test_fuzz_digests_and_platform_specifiers(text):
    for step in (lambda: parse_digest(text), lambda: platforms.parse(text)):
        try:
            step()
        except ContainerdError:
            pass


@pytest.mark.parametrize("blob", [b"[" * 100_000, b'{"a":' * 100_000, b'{"manifests":' + b"[" * 50_000])
def test_deeply_nested_json_is_invalid_argument(blob):
    """Finding of the fuzzer: JSON nested past the interpreter's recursion limit (well under
    the 4 MiB manifest limit) raised RecursionError out of the pull path."""
    from pycontainerd.errdefs import InvalidArgument

    with pytest.raises(InvalidArgument):
        imagespec.parse_json(blob, "manifest")
    with pytest.raises(InvalidArgument):
        fetch.validate_media_type(blob, "application/vnd.oci.image.index.v1+json")


def test_round_trip_of_valid_descriptors():
    d = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": DIGEST, "size": 7,
         "platform": {"os": "linux", "architecture": "arm64", "variant": "v8", "os.features": ["a"]},
         "urls": ["https://x"], "annotations": {"k": "v"}}
    assert Descriptor.from_dict(d).to_dict() == d
    with pytest.raises(ContainerdError):
        Descriptor.from_dict({**d, "urls": 5})
    with pytest.raises(ContainerdError):
        Descriptor.from_dict({**d, "platform": {"os": "linux", "os.features": 3}})
