"""From ``pyctr run``/``containers create`` flags to OCI spec options (the ones
``ctr run`` applies, in its order), plus the parsers for ``--mount``, ``--env-file`` and
sizes. Pure: unit-tested without a daemon.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errdefs import InvalidArgument
from .output import parse_size

if TYPE_CHECKING:
    from ..oci import opts as o


def parse_mount(text: str) -> dict[str, Any]:
    """``type=bind,src=/a,dst=/b,options=rbind:ro`` → an OCI mount. Keys: ``type``
    (default ``bind``), ``src``/``source``, ``dst``/``destination``/``target``,
    ``options`` (``:``-separated). A bind mount without ``bind``/``rbind`` gets ``rbind``.
    Raises :class:`InvalidArgument`."""
    fields: dict[str, str] = {}
    for part in text.split(","):
        if not part:
            continue
        k, sep, v = part.partition("=")
        if not sep:
            raise InvalidArgument(f"mount {text!r}: {part!r} is not key=value")
        k = k.strip().lower()
        if k in ("src", "source"):
            k = "source"
        elif k in ("dst", "destination", "target"):
            k = "destination"
        elif k not in ("type", "options"):
            raise InvalidArgument(f"mount {text!r}: unknown key {k!r} (type, src, dst, options)")
        fields[k] = v
    if "destination" not in fields:
        raise InvalidArgument(f"mount {text!r}: dst= is required")
    if not fields["destination"].startswith("/"):
        raise InvalidArgument(f"mount {text!r}: dst must be an absolute path")
    typ = fields.get("type") or "bind"
    options = [x for x in fields.get("options", "").split(":") if x]
    if typ == "bind" and not {"bind", "rbind"} & set(options):
        options.insert(0, "rbind")
    m: dict[str, Any] = {"destination": fields["destination"], "type": typ,
                         "source": fields.get("source", "none" if typ != "bind" else "")}
    if typ == "bind" and not m["source"]:
        raise InvalidArgument(f"mount {text!r}: a bind mount needs src=")
    if options:
        m["options"] = options
    return m


def parse_env_file(text: str, environ: dict[str, str] | None = None) -> list[str]:
    """Lines ``KEY=value``; blank lines and ``#`` comments skipped; ``KEY`` alone takes the
    value from ``environ`` (this process's environment), or is skipped when unset."""
    env = os.environ if environ is None else environ
    out: list[str] = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, _ = line.partition("=")
        if not key or any(c.isspace() for c in key):
            raise InvalidArgument(f"env file line {n}: {raw!r} is not KEY=value")
        if sep:
            out.append(line)
        elif key in env:
            out.append(f"{key}={env[key]}")
    return out


@dataclass
class RunOptions:
    """The spec-related flags of ``pyctr run`` and ``pyctr containers create``."""

    args: Sequence[str] = ()
    env: Sequence[str] = ()
    env_files: Sequence[str] = ()
    mounts: Sequence[str] = ()
    user: str | None = None
    cwd: str | None = None
    hostname: str | None = None
    memory_limit: str | None = None
    cpus: float | None = None
    net_host: bool = False
    tty: bool = False
    privileged: bool = False
    read_only: bool = False
    seccomp: bool = False
    cap_add: Sequence[str] = ()
    cap_drop: Sequence[str] = ()
    allow_new_privs: bool = False
    annotations: Sequence[str] = ()
    extra: list[Any] = field(default_factory=list)


def spec_options(ro: RunOptions, host_hostname: str | None = None) -> list[o.SpecOpt]:
    """The spec options for ``ro``, after the image config (which the client applies
    first), in ``ctr run``'s order."""
    from ..oci import opts as o  # spec building: only for commands that create containers

    opts: list[o.SpecOpt] = [o.with_default_unix_devices]
    for path in ro.env_files:  # files first, so that --env wins
        try:
            with open(path, encoding="utf-8") as f:
                from_file = parse_env_file(f.read())
        except OSError as exc:
            raise InvalidArgument(f"env file {path}: {exc.strerror}") from exc
        if from_file:
            opts.append(o.with_env(from_file))
    for e in ro.env:
        if "=" not in e or e.startswith("="):
            raise InvalidArgument(f"invalid env {e!r} (want KEY=value)")
    if ro.env:
        opts.append(o.with_env(list(ro.env)))
    if ro.mounts:
        opts.append(o.with_mounts([parse_mount(m) for m in ro.mounts]))
    if ro.args:
        opts.append(o.with_process_args(*ro.args))
    if ro.cwd:
        opts.append(o.with_process_cwd(ro.cwd))
    if ro.tty:
        opts.append(o.with_tty)
    if ro.privileged:
        opts.append(o.with_privileged)
    if ro.read_only:
        opts.append(o.with_readonly_rootfs)
    if ro.net_host:
        name = host_hostname or socket.gethostname()
        opts += [o.with_host_namespace("network"),
                 o.with_mounts([{"destination": "/etc/hosts", "type": "bind", "source": "/etc/hosts",
                                 "options": ["rbind", "ro"]},
                                {"destination": "/etc/resolv.conf", "type": "bind", "source": "/etc/resolv.conf",
                                 "options": ["rbind", "ro"]}]),
                 o.with_env([f"HOSTNAME={name}"])]
    if ro.hostname:
        opts.append(o.with_hostname(ro.hostname))
    if ro.user:
        opts.append(o.with_user(ro.user))
    if ro.memory_limit:
        try:
            opts.append(o.with_memory_limit(parse_size(ro.memory_limit)))
        except ValueError as exc:
            raise InvalidArgument(f"--memory-limit: {exc}") from exc
    if ro.cpus is not None:
        opts.append(o.with_cpus(ro.cpus))
    if ro.cap_add:
        opts.append(o.with_added_capabilities(list(ro.cap_add)))
    if ro.cap_drop:
        opts.append(o.with_dropped_capabilities(list(ro.cap_drop)))
    if ro.allow_new_privs:
        opts.append(o.with_new_privileges)
    if ro.annotations:
        pairs = dict(a.partition("=")[::2] for a in ro.annotations)
        opts.append(o.with_annotations(pairs))
    if ro.seccomp:
        opts.append(o.with_seccomp())
    opts += ro.extra
    return opts


def labels_from(items: Iterable[str]) -> dict[str, str]:
    out = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not k or not sep:
            raise InvalidArgument(f"invalid label {item!r} (want key=value)")
        out[k] = v
    return out
