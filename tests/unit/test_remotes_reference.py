"""Reference parsing and normalisation (docker's reference grammar, as containerd vendors it)."""

from __future__ import annotations

import pytest

from pycontainerd.errdefs import InvalidArgument
from pycontainerd.remotes.reference import (
    normalize,
    parse,
    parse_normalized,
    registry_host,
)

D64 = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    "given, want",
    [
        ("busybox", "docker.io/library/busybox:latest"),
        ("busybox:1.36", "docker.io/library/busybox:1.36"),
        ("library/busybox", "docker.io/library/busybox:latest"),
        ("user/app", "docker.io/user/app:latest"),
        ("docker.io/busybox", "docker.io/library/busybox:latest"),
        ("index.docker.io/library/busybox", "docker.io/library/busybox:latest"),
        ("localhost/app", "localhost/app:latest"),
        ("localhost:5000/app:v1", "localhost:5000/app:v1"),
        ("127.0.0.1:5000/library/busybox:latest", "127.0.0.1:5000/library/busybox:latest"),
        ("quay.io/a/b/c:tag_1.0-x", "quay.io/a/b/c:tag_1.0-x"),
        (f"busybox@{D64}", f"docker.io/library/busybox@{D64}"),
        (f"busybox:1.36@{D64}", f"docker.io/library/busybox@{D64}"),  # digest wins
        ("my-registry.example.com:443/ns/a__b.c-d:x", "my-registry.example.com:443/ns/a__b.c-d:x"),
    ],
)
def test_normalize(given, want):
    assert normalize(given) == want


def test_parts():
    r = parse_normalized("127.0.0.1:5000/library/busybox:latest")
    assert (r.domain, r.path, r.tag, r.digest) == ("127.0.0.1:5000", "library/busybox", "latest", "")
    assert r.hostname == "127.0.0.1:5000"
    assert r.locator == "127.0.0.1:5000/library/busybox"
    assert r.object == "latest"
    d = parse_normalized(f"busybox@{D64}")
    assert d.object == f"@{D64}"
    assert d.familiar() == f"busybox@{D64}"
    assert parse_normalized("user/app:1").familiar() == "user/app:1"


def test_parse_keeps_what_was_written():
    r = parse("busybox")
    assert (r.domain, r.path, r.tag) == ("", "busybox", "")
    r = parse(f"h:1/x:t@{D64}")
    assert (r.domain, r.path, r.tag, r.digest) == ("h:1", "x", "t", D64)
    assert r.object == f"t@{D64}"
    assert parse_normalized("busybox", default_tag=False).tag == ""


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "Busybox",
        "docker.io/Library/busybox",
        "busybox:",
        "busybox:-tag",
        "busybox:" + "t" * 129,
        "busybox@sha256:abc",
        "busybox@sha256:" + "g" * 64,
        "busybox@md5:" + "a" * 32,
        "busybox@sha256:" + "a" * 63,
        "a" * 64,  # an image id, not a name
        "http://registry/x",
        "registry/x y",
        "-leading/x",
        "a//b",
        "x/" + "a" * 260,
        "busybox:latest:again",
    ],
)
def test_invalid(bad):
    with pytest.raises(InvalidArgument):
        parse_normalized(bad)


def test_uppercase_domain_is_allowed_but_not_path():
    assert normalize("Registry.Example.com/x") == "Registry.Example.com/x:latest"
    with pytest.raises(InvalidArgument, match="lowercase"):
        parse_normalized("registry.example.com/X")


def test_registry_host():
    assert registry_host("docker.io") == "registry-1.docker.io"
    assert registry_host("127.0.0.1:5000") == "127.0.0.1:5000"


def test_with_tag_and_digest():
    r = parse_normalized("busybox")
    assert str(r.with_tag("1")) == "docker.io/library/busybox:1"
    assert str(r.with_digest(D64)) == f"docker.io/library/busybox:latest@{D64}"
    with pytest.raises(InvalidArgument):
        r.with_tag("bad tag")
    with pytest.raises(InvalidArgument):
        r.with_digest("sha256:nope")
