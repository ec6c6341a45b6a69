"""Platform specifiers (``os[/arch[/variant]]``) parsed, formatted, normalised and matched as
containerd 1.6 does (``platforms/``).

Normalisation: ``x86_64``/``x86-64`` → ``amd64`` (variant ``v1`` dropped); ``aarch64`` →
``arm64`` with variant ``8``/``v8`` dropped; ``armhf`` → ``arm/v7``, ``armel`` → ``arm/v6``;
``arm`` gets ``v7`` when no variant is given and ``5``/``6``/``7``/``8`` become ``vN``;
``i386`` → ``386``; ``macos`` → ``darwin``; an empty os is this host's.

:func:`parse` keeps what a user wrote where containerd does (``linux/arm64/v8`` keeps ``v8``,
``linux/arm64`` gets none, ``linux/arm`` drops the implied ``v7``); matching normalises both
sides, so ``linux/arm64`` and ``linux/arm64/v8`` are the same platform.

:func:`only` builds containerd's ordered matcher for picking a manifest out of an index:
the platform itself first, then what it can also run (amd64 → 386; arm/v7 → v6 → v5;
arm64 → arm/v8, v7, v6, v5), in that order of preference.
"""

from __future__ import annotations

import os
import platform as _pyplatform
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Protocol

from pycontainerd.descriptor import Platform
from pycontainerd.errdefs import InvalidArgument, quote

__all__ = [
    "Platform",
    "Matcher",
    "MatchComparer",
    "parse",
    "format",
    "normalize",
    "default_spec",
    "default_string",
    "default",
    "default_strict",
    "only",
    "only_strict",
    "ordered",
    "any_of",
    "ALL",
]

_SPECIFIER_RE = re.compile(r"^[A-Za-z0-9_-]+$")

_KNOWN_OS = frozenset(
    "aix android darwin dragonfly freebsd hurd illumos ios js linux nacl netbsd openbsd plan9 solaris windows zos".split()
)
_KNOWN_ARCH = frozenset(
    (
        "386 amd64 amd64p32 arm armbe arm64 arm64be ppc64 ppc64le loong64 mips mipsle mips64 mips64le "
        "mips64p32 mips64p32le ppc riscv riscv64 s390 s390x sparc sparc64 wasm"
    ).split()
)
_MACHINE_TO_GOARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "i386": "386",
    "i486": "386",
    "i586": "386",
    "i686": "386",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv5l": "arm",
    "armv6l": "arm",
    "armv7l": "arm",
    "armv8l": "arm",
    "ppc64le": "ppc64le",
    "ppc64": "ppc64",
    "s390x": "s390x",
    "riscv64": "riscv64",
    "mips64": "mips64le",
    "loongarch64": "loong64",
}


def normalize_os(os_: str) -> str:
    if not os_:
        return _host_os()
    os_ = os_.lower()
    return "darwin" if os_ == "macos" else os_


def normalize_arch(arch: str, variant: str) -> tuple[str, str]:
    arch, variant = arch.lower(), variant.lower()
    if arch == "i386":
        return "386", ""
    if arch in ("x86_64", "x86-64", "amd64"):
        return "amd64", "" if variant == "v1" else variant
    if arch in ("aarch64", "arm64"):
        return "arm64", "" if variant in ("8", "v8") else variant
    if arch == "armhf":
        return "arm", "v7"
    if arch == "armel":
        return "arm", "v6"
    if arch == "arm":
        if variant in ("", "7"):
            return "arm", "v7"
        if variant in ("5", "6", "8"):
            return "arm", "v" + variant
    return arch, variant


def normalize(p: Platform) -> Platform:
    """The canonical form used for matching (see module doc)."""
    arch, variant = normalize_arch(p.architecture, p.variant)
    return Platform(
        os=normalize_os(p.os), architecture=arch, variant=variant, os_version=p.os_version, os_features=p.os_features
    )


def parse(specifier: str) -> Platform:
    """Parse ``os``, ``arch``, ``os/arch`` or ``os/arch/variant``.

    A lone known OS gets this host's architecture; a lone known architecture gets this
    host's OS. Raises InvalidArgument for wildcards, bad components or unknown names.
    """
    if "*" in specifier:
        raise InvalidArgument(f"{quote(specifier)}: wildcards not yet supported")
    parts = specifier.split("/")
    for part in parts:
        if not _SPECIFIER_RE.match(part):
            raise InvalidArgument(
                f"{quote(part)} is an invalid component of {quote(specifier)}: "
                f"platform specifier component must match {quote(_SPECIFIER_RE.pattern)}"
            )
    if len(parts) == 1:
        os_ = normalize_os(parts[0])
        if os_ in _KNOWN_OS:
            arch = _host_arch()
            variant = ""
            if arch == "arm" and cpu_variant() != "v7":
                variant = cpu_variant()
            return Platform(os=os_, architecture=arch, variant=variant)
        arch, variant = normalize_arch(parts[0], "")
        if arch == "arm" and variant == "v7":
            variant = ""
        if arch in _KNOWN_ARCH:
            return Platform(os=_host_os(), architecture=arch, variant=variant)
        raise InvalidArgument(f"{quote(specifier)}: unknown operating system or architecture")
    if len(parts) == 2:
        arch, variant = normalize_arch(parts[1], "")
        if arch == "arm" and variant == "v7":
            variant = ""
        return Platform(os=normalize_os(parts[0]), architecture=arch, variant=variant)
    if len(parts) == 3:
        arch, variant = normalize_arch(parts[1], parts[2])
        if arch == "arm64" and variant == "":
            variant = "v8"
        return Platform(os=normalize_os(parts[0]), architecture=arch, variant=variant)
    raise InvalidArgument(f"{quote(specifier)}: cannot parse platform specifier")


def format(p: Platform) -> str:  # noqa: A001 - containerd's name
    """``os/arch[/variant]``, or ``unknown`` without an OS."""
    return str(p)


def _host_os() -> str:
    return os.uname().sysname.lower() if hasattr(os, "uname") else "linux"


@lru_cache(maxsize=1)
def _host_arch() -> str:
    machine = _pyplatform.machine().lower()
    return _MACHINE_TO_GOARCH.get(machine, machine)


def _cpuinfo(field: str, text: str) -> str | None:
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() == field.lower():
            return value.strip()
    return None


def cpu_variant_from_cpuinfo(arch: str, cpuinfo: str) -> str:
    """containerd's ``getCPUVariant`` on the text of ``/proc/cpuinfo`` (ARM only)."""
    variant = _cpuinfo("Cpu architecture", cpuinfo)
    if variant is None:
        return ""
    if arch == "arm" and variant == "7":
        model = _cpuinfo("model name", cpuinfo) or ""
        if model.lower().startswith("armv6-compatible"):
            variant = "6"
    table = {
        "8": "v8",
        "aarch64": "v8",
        "7": "v7",
        "7m": "v7",
        "6": "v6",
        "6tej": "v6",
        "5": "v5",
        "5t": "v5",
        "5te": "v5",
        "5tej": "v5",
        "4": "v4",
        "4t": "v4",
        "3": "v3",
    }
    table.update({f"?({n})": "v7" for n in range(12, 18)})
    return table.get(variant.lower(), "unknown")


@lru_cache(maxsize=1)
def cpu_variant() -> str:
    """This host's ARM variant (``v8``, ``v7`` …), ``""`` on other architectures."""
    arch = _host_arch()
    if arch not in ("arm", "arm64"):
        return ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            return cpu_variant_from_cpuinfo(arch, f.read())
    except OSError:
        return ""


def default_spec() -> Platform:
    """This host's platform (containerd's ``DefaultSpec``)."""
    return Platform(os=_host_os(), architecture=_host_arch(), variant=cpu_variant())


def default_string() -> str:
    return format(default_spec())


class Matcher(Protocol):
    def match(self, platform: Platform) -> bool: ...


class MatchComparer(Matcher, Protocol):
    def less(self, a: Platform, b: Platform) -> bool:
        """True when ``a`` is preferred over ``b``."""
        ...


class _Exact:
    def __init__(self, platform: Platform) -> None:
        self.platform = normalize(platform)

    def match(self, platform: Platform) -> bool:
        n = normalize(platform)
        p = self.platform
        return p.os == n.os and p.architecture == n.architecture and p.variant == n.variant

    def __repr__(self) -> str:
        return f"Matcher({format(self.platform)})"


class _Ordered:
    """Matches any of the platforms; earlier ones are preferred."""

    def __init__(self, platforms: Sequence[Platform]) -> None:
        self.matchers = [_Exact(p) for p in platforms]

    def match(self, platform: Platform) -> bool:
        return any(m.match(platform) for m in self.matchers)

    def less(self, a: Platform, b: Platform) -> bool:
        for m in self.matchers:
            am, bm = m.match(a), m.match(b)
            if am and not bm:
                return True
            if am or bm:
                return False
        return False

    def __repr__(self) -> str:
        return f"Ordered({', '.join(format(m.platform) for m in self.matchers)})"


class _Any(_Ordered):
    """Matches any of the platforms; a matching platform is preferred over a non-matching one."""

    def less(self, a: Platform, b: Platform) -> bool:
        am = any(m.match(a) for m in self.matchers)
        bm = any(m.match(b) for m in self.matchers)
        return am and not bm


class _All:
    def match(self, platform: Platform) -> bool:
        return True

    def less(self, a: Platform, b: Platform) -> bool:
        return False

    def __repr__(self) -> str:
        return "All"


ALL: MatchComparer = _All()
"""Matches every platform (pull all platforms)."""


def platform_vector(p: Platform) -> list[Platform]:
    """``p`` followed by the platforms it can also run, most preferred first."""
    vector = [p]
    if p.architecture == "amd64":
        m = re.fullmatch(r"v?(\d+)", p.variant)
        if m and int(m.group(1)) > 1:
            for v in range(int(m.group(1)) - 1, 0, -1):
                vector.append(Platform(p.os, "amd64", f"v{v}", p.os_version, p.os_features))
        vector.append(Platform(p.os, "386", "", p.os_version, p.os_features))
    elif p.architecture == "arm":
        m = re.fullmatch(r"v?(\d+)", p.variant)
        if m and int(m.group(1)) > 5:
            for v in range(int(m.group(1)) - 1, 4, -1):
                vector.append(Platform(p.os, "arm", f"v{v}", p.os_version, p.os_features))
    elif p.architecture == "arm64":
        vector.extend(platform_vector(Platform(p.os, "arm", p.variant or "v8", p.os_version, p.os_features)))
    return vector


def only(p: Platform | str) -> MatchComparer:
    """``p`` and what it can also run, in containerd's order of preference (``platforms.Only``)."""
    if isinstance(p, str):
        p = parse(p)
    return _Ordered(platform_vector(normalize(p)))


def only_strict(p: Platform | str) -> MatchComparer:
    """Exactly ``p`` (after normalisation)."""
    if isinstance(p, str):
        p = parse(p)
    return _Ordered([normalize(p)])


def ordered(platforms: Iterable[Platform | str]) -> MatchComparer:
    return _Ordered([parse(p) if isinstance(p, str) else p for p in platforms])


def any_of(platforms: Iterable[Platform | str]) -> MatchComparer:
    return _Any([parse(p) if isinstance(p, str) else p for p in platforms])


def default() -> MatchComparer:
    """This host's platform and what it can also run."""
    return only(default_spec())


def default_strict() -> MatchComparer:
    return only_strict(default_spec())
