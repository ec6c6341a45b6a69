"""Process options: args, cwd, env, tty, hostname, privileges, rlimits, OOM score, LSM
labels, and the process configured from an image config."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ...errdefs import InvalidArgument
from ..spec import DEFAULT_UNIX_ENV, Spec
from .base import (
    OOM_SCORE_ADJ_MAX,
    OOM_SCORE_ADJ_MIN,
    RLIMIT_TYPES,
    SpecContext,
    SpecOpt,
    _Flag,
    _int,
    _process,
    _set,
    _strings,
    _user,
)
from .users import with_additional_gids, with_user


def replace_or_append_env(defaults: Iterable[str], overrides: Iterable[str]) -> list[str]:
    """``defaults`` with ``overrides`` replacing entries of the same key, appending new ones;
    an override without ``=`` unsets that key (containerd's ``replaceOrAppendEnvValues``)."""
    results: list[str | None] = []
    index: dict[str, int] = {}
    for i, e in enumerate(defaults):
        results.append(e)
        index[e.split("=", 1)[0]] = i
    for value in overrides:
        if "=" not in value:
            if value in index:
                results[index[value]] = None
            continue
        k = value.split("=", 1)[0]
        if k in index:
            results[index[k]] = value
        else:
            results.append(value)
    return [e for e in results if e]


def with_process_args(*args: str) -> SpecOpt:
    """Replace ``process.args``."""
    argv = _strings(args, "process args")

    def _with_process_args(spec: Spec, ctx: SpecContext) -> None:
        p = _process(spec)
        _set(p, "args", list(argv))
        p.pop("commandLine", None)

    return _with_process_args


def with_process_cwd(cwd: str) -> SpecOpt:
    """Set ``process.cwd`` (must be absolute, as the runtime-spec requires on Linux)."""
    if not isinstance(cwd, str) or not cwd.startswith("/"):
        raise InvalidArgument(f"process cwd must be an absolute path, got {cwd!r}")

    def _with_process_cwd(spec: Spec, ctx: SpecContext) -> None:
        _process(spec)["cwd"] = cwd

    return _with_process_cwd


def with_env(env: Iterable[str]) -> SpecOpt:
    """Merge ``KEY=value`` entries into ``process.env`` (replacing by key; ``KEY`` alone unsets)."""
    values = _strings(env, "env")

    def _with_env(spec: Spec, ctx: SpecContext) -> None:
        if values:
            p = _process(spec)
            _set(p, "env", replace_or_append_env(p.get("env") or [], values))

    return _with_env


@_Flag
def with_default_path_env(spec: Spec, ctx: SpecContext) -> None:
    """Set ``PATH`` to containerd's default (``WithDefaultPathEnv``)."""
    p = _process(spec)
    _set(p, "env", replace_or_append_env(p.get("env") or [], DEFAULT_UNIX_ENV))


@_Flag
def with_tty(spec: Spec, ctx: SpecContext) -> None:
    """A terminal for the process, and ``TERM=xterm`` (appended, as containerd does)."""
    p = _process(spec)
    p["terminal"] = True
    if "linux" in spec:
        p["env"] = list(p.get("env") or []) + ["TERM=xterm"]


def with_tty_size(width: int, height: int) -> SpecOpt:
    w = _int(width, "console width", 0)
    h = _int(height, "console height", 0)

    def _with_tty_size(spec: Spec, ctx: SpecContext) -> None:
        _process(spec)["consoleSize"] = {"height": h, "width": w}

    return _with_tty_size


def with_hostname(name: str) -> SpecOpt:
    """Set the container's hostname (needs a UTS namespace, which the default spec has)."""
    if not isinstance(name, str):
        raise InvalidArgument(f"hostname must be a string, not {name!r}")

    def _with_hostname(spec: Spec, ctx: SpecContext) -> None:
        _set(spec, "hostname", name)

    return _with_hostname


@_Flag
def with_no_new_privileges(spec: Spec, ctx: SpecContext) -> None:
    _process(spec)["noNewPrivileges"] = True


@_Flag
def with_new_privileges(spec: Spec, ctx: SpecContext) -> None:
    """Turn ``noNewPrivileges`` off (``WithNewPrivileges``)."""
    _process(spec).pop("noNewPrivileges", None)


def with_rlimits(rlimits: Iterable[Mapping[str, Any]]) -> SpecOpt:
    """Set POSIX rlimits ``{"type": "RLIMIT_…", "hard": n, "soft": n}``, replacing by type."""
    items = []
    for r in rlimits:
        if not isinstance(r, Mapping):
            raise InvalidArgument(f"rlimit must be a mapping, got {r!r}")
        typ = r.get("type")
        if typ not in RLIMIT_TYPES:
            raise InvalidArgument(f"unknown rlimit type {typ!r} (one of {', '.join(sorted(RLIMIT_TYPES))})")
        hard = _int(r.get("hard"), f"{typ} hard", 0, 2**64 - 1)
        soft = _int(r.get("soft"), f"{typ} soft", 0, 2**64 - 1)
        if soft > hard:
            raise InvalidArgument(f"{typ}: soft limit {soft} is above the hard limit {hard}")
        items.append({"type": typ, "hard": hard, "soft": soft})

    def _with_rlimits(spec: Spec, ctx: SpecContext) -> None:
        p = _process(spec)
        current = list(p.get("rlimits") or [])
        for item in items:
            for i, r in enumerate(current):
                if r.get("type") == item["type"]:
                    current[i] = dict(item)
                    break
            else:
                current.append(dict(item))
        _set(p, "rlimits", current)

    return _with_rlimits


def _current_oom_score_adj() -> int:
    with open("/proc/self/oom_score_adj", encoding="ascii") as f:
        return int(f.read().strip())


def with_oom_score_adj(score: int, restrict: bool = False, *, current: int | None = None) -> SpecOpt:
    """Set ``process.oomScoreAdj``.

    With ``restrict`` (the CRI's ``restrict_oom_score_adj``), a score below the calling
    process's own (``current``, default: read from ``/proc/self/oom_score_adj``) is raised to
    it: an unprivileged daemon cannot hand out a lower score than it has.
    """
    adj = _int(score, "oom_score_adj", OOM_SCORE_ADJ_MIN, OOM_SCORE_ADJ_MAX)

    def _with_oom_score_adj(spec: Spec, ctx: SpecContext) -> None:
        value = adj
        if restrict:
            cur = current if current is not None else _current_oom_score_adj()
            value = max(value, cur)
        _process(spec)["oomScoreAdj"] = value

    return _with_oom_score_adj


def with_apparmor_profile(profile: str) -> SpecOpt:
    """Set (or with ``""`` clear) the AppArmor profile of the process."""
    if not isinstance(profile, str):
        raise InvalidArgument(f"apparmor profile must be a string, not {profile!r}")

    def _with_apparmor_profile(spec: Spec, ctx: SpecContext) -> None:
        _set(_process(spec), "apparmorProfile", profile)

    return _with_apparmor_profile


def with_selinux_label(label: str) -> SpecOpt:
    def _with_selinux_label(spec: Spec, ctx: SpecContext) -> None:
        _set(_process(spec), "selinuxLabel", label)

    return _with_selinux_label


# --- image config -------------------------------------------------------------------------

_IMAGE_KEYS = ("config", "rootfs", "architecture", "os", "history")


def _image_config_section(image_config: Mapping[str, Any]) -> Mapping[str, Any]:
    if not isinstance(image_config, Mapping):
        raise InvalidArgument("image config must be a JSON object")
    if any(k in image_config for k in _IMAGE_KEYS):
        section = image_config.get("config") or {}
        if not isinstance(section, Mapping):
            raise InvalidArgument("image config: config must be a JSON object")
        return section
    return image_config


def with_image_config(image_config: Mapping[str, Any] | None = None, args: Iterable[str] | None = None) -> SpecOpt:
    """Configure the process from an image config (containerd's ``WithImageConfigArgs``).

    - ``env``: the image's ``Env`` (or, if it has none, ``PATH=`` containerd's default),
      with what the spec already had merged over it;
    - ``args``: ``Entrypoint`` + ``Cmd``; given ``args`` replace ``Cmd`` (the entrypoint
      stays);
    - ``cwd``: ``WorkingDir`` or ``/``;
    - user: ``User`` through :func:`with_user`, then that uid's supplementary groups from
      ``/etc/group``; with no ``User``, root's supplementary groups.

    ``image_config`` defaults to ``ctx.image_config``.
    """
    override = _strings(args, "args") if args is not None else []

    def _with_image_config(spec: Spec, ctx: SpecContext) -> None:
        source = image_config if image_config is not None else ctx.image_config
        if source is None:
            raise InvalidArgument("no image config given")
        cfg = _image_config_section(source)
        env = _strings(cfg.get("Env"), "image config Env")
        entrypoint = _strings(cfg.get("Entrypoint"), "image config Entrypoint")
        cmd = _strings(cfg.get("Cmd"), "image config Cmd")
        workdir = cfg.get("WorkingDir") or ""
        usr = cfg.get("User") or ""
        if not isinstance(workdir, str) or not isinstance(usr, str):
            raise InvalidArgument("image config WorkingDir and User must be strings")
        if "linux" not in spec:
            raise InvalidArgument("spec does not contain Linux or Windows section")
        p = _process(spec)
        _set(p, "env", replace_or_append_env(env or DEFAULT_UNIX_ENV, p.get("env") or []))
        _set(p, "args", entrypoint + (override or cmd))
        p["cwd"] = workdir or "/"
        if usr:
            with_user(usr, additional_gids=False)(spec, ctx)
            with_additional_gids(str(_user(spec)["uid"]))(spec, ctx)
        else:
            with_additional_gids("root")(spec, ctx)

    return _with_image_config


with_image_config_args = with_image_config
