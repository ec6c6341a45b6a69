"""Platform parsing, normalisation and matching, checked against containerd 1.6's tables."""

from __future__ import annotations

import pytest

from pycontainerd.descriptor import Descriptor, Platform
from pycontainerd.errdefs import InvalidArgument, NotFound
from pycontainerd.remotes import platforms as P
from pycontainerd.images.walk import select_platforms


@pytest.mark.parametrize(
    "spec, want, formatted",
    [
        ("linux/amd64", Platform("linux", "amd64"), "linux/amd64"),
        ("linux/x86_64", Platform("linux", "amd64"), "linux/amd64"),
        ("linux/x86-64", Platform("linux", "amd64"), "linux/amd64"),
        ("linux/amd64/v1", Platform("linux", "amd64"), "linux/amd64"),
        ("linux/amd64/v3", Platform("linux", "amd64", "v3"), "linux/amd64/v3"),
        ("linux/aarch64", Platform("linux", "arm64"), "linux/arm64"),
        ("linux/arm64", Platform("linux", "arm64"), "linux/arm64"),
        ("linux/arm64/v8", Platform("linux", "arm64", "v8"), "linux/arm64/v8"),
        ("linux/aarch64/8", Platform("linux", "arm64", "v8"), "linux/arm64/v8"),
        ("linux/arm", Platform("linux", "arm"), "linux/arm"),
        ("linux/arm/v7", Platform("linux", "arm", "v7"), "linux/arm/v7"),
        ("linux/arm/6", Platform("linux", "arm", "v6"), "linux/arm/v6"),
        ("linux/armhf", Platform("linux", "arm"), "linux/arm"),
        ("linux/armel", Platform("linux", "arm", "v6"), "linux/arm/v6"),
        ("linux/i386", Platform("linux", "386"), "linux/386"),
        ("macos/arm64", Platform("darwin", "arm64"), "darwin/arm64"),
        ("Linux/AMD64", Platform("linux", "amd64"), "linux/amd64"),
        ("windows/amd64", Platform("windows", "amd64"), "windows/amd64"),
    ],
)
def test_parse_and_format(spec, want, formatted):
    got = P.parse(spec)
    assert got == want
    assert P.format(got) == formatted


def test_parse_single_component_fills_host():
    host = P.default_spec()
    assert P.parse("linux").os == "linux"
    assert P.parse("linux").architecture == host.architecture
    assert P.parse("arm64") == Platform(host.os, "arm64")
    assert P.parse("armhf") == Platform(host.os, "arm")


@pytest.mark.parametrize("bad", ["", "*", "linux/*", "linux/amd64/v1/x", "li nux", "linux//amd64", "nonsense"])
def test_parse_invalid(bad):
    with pytest.raises(InvalidArgument):
        P.parse(bad)


@pytest.mark.parametrize(
    "raw, want",
    [
        (Platform("linux", "aarch64", "8"), Platform("linux", "arm64")),
        (Platform("linux", "arm64", "v8"), Platform("linux", "arm64")),
        (Platform("linux", "arm"), Platform("linux", "arm", "v7")),
        (Platform("linux", "x86_64", "v1"), Platform("linux", "amd64")),
        (Platform("", "amd64"), Platform(P.default_spec().os, "amd64")),
    ],
)
def test_normalize(raw, want):
    assert P.normalize(raw) == want


def test_matcher_arm64_variants_are_equal():
    m = P.only_strict("linux/arm64")
    assert m.match(Platform("linux", "arm64", "v8"))
    assert m.match(Platform("linux", "aarch64"))
    assert not m.match(Platform("linux", "arm64", "v9"))
    assert not m.match(Platform("linux", "amd64"))


def test_only_vectors():
    assert repr(P.only("linux/amd64")) == "Ordered(linux/amd64, linux/386)"
    assert repr(P.only("linux/amd64/v3")) == "Ordered(linux/amd64/v3, linux/amd64/v2, linux/amd64, linux/386)"
    assert repr(P.only("linux/arm/v7")) == "Ordered(linux/arm/v7, linux/arm/v6, linux/arm/v5)"
    assert repr(P.only("linux/arm64")) == (
        "Ordered(linux/arm64, linux/arm/v8, linux/arm/v7, linux/arm/v6, linux/arm/v5)"
    )
    m = P.only("linux/arm64")
    assert m.match(Platform("linux", "arm", "v7"))
    assert not m.match(Platform("linux", "amd64"))
    assert m.less(Platform("linux", "arm64", "v8"), Platform("linux", "arm", "v7"))
    assert not m.less(Platform("linux", "arm", "v7"), Platform("linux", "arm64"))


def test_any_and_all():
    m = P.any_of(["linux/amd64", "linux/arm64"])
    assert m.match(Platform("linux", "arm64", "v8")) and m.match(Platform("linux", "amd64"))
    assert not m.less(Platform("linux", "amd64"), Platform("linux", "arm64"))
    assert m.less(Platform("linux", "amd64"), Platform("linux", "s390x"))
    assert P.ALL.match(Platform("plan9", "mips"))


def _entry(n: int, p: Platform | None) -> Descriptor:
    return Descriptor("application/vnd.oci.image.manifest.v1+json", f"sha256:{n:064x}", 1, platform=p)


def test_select_from_index_order():
    entries = [
        _entry(1, Platform("linux", "arm", "v6")),
        _entry(2, Platform("linux", "arm64", "v8")),
        _entry(3, Platform("linux", "amd64")),
        _entry(4, Platform("linux", "arm", "v7")),
        _entry(5, Platform("windows", "amd64")),
    ]
    assert select_platforms(entries, P.only("linux/arm64"), 1) == [entries[1]]
    assert select_platforms(entries, P.only("linux/arm64"), 0) == [entries[1], entries[3], entries[0]]
    assert select_platforms(entries, P.only("linux/arm/v7"), 1) == [entries[3]]
    assert select_platforms(entries, P.only("linux/amd64"), 1) == [entries[2]]
    # an amd64 host falls back to 386
    only386 = [_entry(6, Platform("linux", "386")), _entry(7, Platform("linux", "arm64"))]
    assert select_platforms(only386, P.only("linux/amd64"), 1) == [only386[0]]
    with pytest.raises(NotFound, match="no match for platform"):
        select_platforms(entries, P.only("linux/s390x"), 1)
    # entries without a platform match anything but sort last
    anyp = [_entry(8, None), _entry(9, Platform("linux", "amd64"))]
    assert select_platforms(anyp, P.only("linux/amd64"), 0) == [anyp[1], anyp[0]]


def test_cpu_variant_from_cpuinfo():
    assert P.cpu_variant_from_cpuinfo("arm64", "processor\t: 0\nCPU architecture: 8\n") == "v8"
    assert P.cpu_variant_from_cpuinfo("arm", "CPU architecture: 7\nmodel name: ARMv6-compatible processor\n") == "v6"
    assert P.cpu_variant_from_cpuinfo("arm", "CPU architecture: 7\n") == "v7"
    assert P.cpu_variant_from_cpuinfo("arm", "CPU architecture: 5TEJ\n") == "v5"
    assert P.cpu_variant_from_cpuinfo("arm", "nothing here\n") == ""
