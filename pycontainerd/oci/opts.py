"""Spec options: composable edits of an OCI spec, after containerd's ``oci.SpecOpts``.

An option is a callable ``opt(spec, ctx) -> None`` that edits ``spec`` (a dict in
``config.json`` shape, see :mod:`pycontainerd.oci.spec`) in place; ``ctx`` is the
:class:`SpecContext` (namespace, container id, image config, host path of the rootfs).
:func:`generate` builds containerd's default spec and applies options in order, so a later
option wins::

    spec = generate("default", "web",
                    with_image_config(), with_user("nobody"), with_env(["A=1"]),
                    with_memory_limit(64 << 20), with_seccomp(),
                    image_config=cfg, rootfs="/run/.../rootfs")

Names follow containerd's (``WithProcessArgs`` → :func:`with_process_args`). Options that
containerd exposes as values rather than constructors (``WithTTY``, ``WithPrivileged``,
``WithNoNewPrivileges``, …) work both ways here: ``with_tty`` and ``with_tty()`` are the
same option. Bad input raises :class:`~pycontainerd.errdefs.InvalidArgument` with a message
saying what was wrong. Options keep Go's ``omitempty`` shape: a list set to empty removes
its key.

Users are looked up in the rootfs (``ctx.rootfs``, else ``root.path`` when absolute), read
with :func:`pycontainerd.oci.user.read_in_root`, which never follows a link out of it.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import posixpath
import re
import stat
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errdefs import InvalidArgument, quote
from . import seccomp as seccomp_mod
from . import user as user_mod
from .spec import (
    CGROUP_UNIFIED,
    DEFAULT_UNIX_ENV,
    KNOWN_CAPS,
    NAMESPACE_TYPES,
    RWM,
    Spec,
    cgroup_mode,
    default_spec,
)

MAX_ID = 2**31 - 1
"""runc requires uid and gid ≤ MaxInt32; containerd follows it."""
OOM_SCORE_ADJ_MIN = -1000
OOM_SCORE_ADJ_MAX = 1000
DEFAULT_CPU_PERIOD = 100000

RLIMIT_TYPES = frozenset(
    "RLIMIT_" + n
    for n in (
        "AS CORE CPU DATA FSIZE LOCKS MEMLOCK MSGQUEUE NICE NOFILE NPROC RSS RTPRIO RTTIME "
        "SIGPENDING STACK"
    ).split()
)


@dataclass
class SpecContext:
    """What options may consult besides the spec.

    ``image_config``: the image's config JSON (the whole ``application/vnd.oci.image.config``
    document or just its ``config`` object). ``rootfs``: host path of the container's root
    filesystem, where ``/etc/passwd`` and ``/etc/group`` are read.
    """

    namespace: str
    id: str
    image_config: Mapping[str, Any] | None = None
    rootfs: str | None = None


SpecOpt = Callable[[Spec, SpecContext], None]


class _Flag:
    """An option that is also its own constructor: ``opt`` and ``opt()`` are the same."""

    def __init__(self, fn: SpecOpt) -> None:
        self._fn = fn
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any) -> Any:
        if not args:
            return self
        return self._fn(*args)

    def __repr__(self) -> str:
        return f"<spec option {self._fn.__name__}>"


def generate(
    namespace: str,
    container_id: str,
    *opts: SpecOpt,
    image_config: Mapping[str, Any] | None = None,
    rootfs: str | os.PathLike[str] | None = None,
) -> Spec:
    """containerd's default spec for ``namespace``/``container_id`` with ``opts`` applied in order."""
    spec = default_spec(namespace, container_id)
    ctx = SpecContext(namespace, container_id, image_config, os.fspath(rootfs) if rootfs is not None else None)
    apply(spec, ctx, *opts)
    return spec


def apply(spec: Spec, ctx: SpecContext, *opts: SpecOpt) -> None:
    """Apply ``opts`` to ``spec`` in order (containerd's ``ApplyOpts``)."""
    for opt in opts:
        if not callable(opt):
            raise InvalidArgument(f"spec option {opt!r} is not callable")
        opt(spec, ctx)


def compose(*opts: SpecOpt) -> SpecOpt:
    """One option that applies ``opts`` in order."""

    def _compose(spec: Spec, ctx: SpecContext) -> None:
        apply(spec, ctx, *opts)

    return _compose


# --- helpers ------------------------------------------------------------------------------


def _process(spec: Spec) -> dict[str, Any]:
    return spec.setdefault("process", {"user": {"uid": 0, "gid": 0}, "cwd": ""})


def _linux(spec: Spec) -> dict[str, Any]:
    return spec.setdefault("linux", {})


def _resources(spec: Spec) -> dict[str, Any]:
    return _linux(spec).setdefault("resources", {})


def _cpu(spec: Spec) -> dict[str, Any]:
    return _resources(spec).setdefault("cpu", {})


def _user(spec: Spec) -> dict[str, Any]:
    return _process(spec).setdefault("user", {"uid": 0, "gid": 0})


def _capabilities(spec: Spec) -> dict[str, Any]:
    return _process(spec).setdefault("capabilities", {})


def _set(d: dict[str, Any], k: str, v: Any) -> None:
    """Set ``d[k]``, or drop the key for an empty value (Go's ``omitempty``)."""
    if v is None or v == "" or v is False or (isinstance(v, (list, dict)) and not v):
        d.pop(k, None)
    else:
        d[k] = v


def _strings(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise InvalidArgument(f"{what} must be a list of strings, not {type(value).__name__}")
    out = list(value)
    for v in out:
        if not isinstance(v, str):
            raise InvalidArgument(f"{what} must be a list of strings, got {v!r}")
    return out


def _int(value: Any, what: str, lo: int | None = None, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{what} must be an integer, not {value!r}")
    if lo is not None and value < lo:
        raise InvalidArgument(f"{what} must be at least {lo}, got {value}")
    if hi is not None and value > hi:
        raise InvalidArgument(f"{what} must be at most {hi}, got {value}")
    return value


def _str_map(value: Any, what: str) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise InvalidArgument(f"{what} must be a mapping of strings")
    for k, v in value.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise InvalidArgument(f"{what} must map strings to strings, got {k!r}: {v!r}")
    return dict(value)


# --- process ------------------------------------------------------------------------------


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


# --- users --------------------------------------------------------------------------------


def _root_for_lookup(spec: Spec, ctx: SpecContext) -> str:
    if ctx.rootfs:
        return ctx.rootfs
    path = (spec.get("root") or {}).get("path") or ""
    if not path.startswith("/"):
        raise InvalidArgument("rootfs absolute path is required (give the rootfs to read /etc/passwd from)")
    return path


def _lookup_error(what: str, exc: OSError) -> InvalidArgument:
    return InvalidArgument(f"reading {what} in the container rootfs: {exc.strerror or exc}")


def _find_user(root: str, match: Callable[[user_mod.User], bool]) -> user_mod.User | None:
    """The first matching user, or None; FileNotFoundError propagates."""
    try:
        found = user_mod.users(root, match)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise _lookup_error("/etc/passwd", exc) from exc
    return found[0] if found else None


def _user_by_name(root: str, name: str) -> user_mod.User:
    try:
        u = _find_user(root, lambda u: u.name == name)
    except FileNotFoundError as exc:
        raise InvalidArgument(f"unable to find user {quote(name)}: no users found (no /etc/passwd in the rootfs)") from exc
    if u is None:
        raise InvalidArgument(f"unable to find user {quote(name)}: no users found")
    return u


def _gid_by_name(root: str, name: str) -> int:
    try:
        found = user_mod.groups(root, lambda g: g.name == name)
    except FileNotFoundError as exc:
        raise InvalidArgument(f"unable to find group {quote(name)}: no groups found (no /etc/group in the rootfs)") from exc
    except OSError as exc:
        raise _lookup_error("/etc/group", exc) from exc
    if not found:
        raise InvalidArgument(f"unable to find group {quote(name)}: no groups found")
    return found[0].gid


_NUMBER = re.compile(r"[+-]?[0-9]+")


def _parse_id(s: str, hi: int = MAX_ID) -> int | None:
    """``s`` as an id if it is a number in [0, MaxInt32] (Go ``Atoi`` rules), else None."""
    if not _NUMBER.fullmatch(s):
        return None
    v = int(s)
    return v if 0 <= v <= hi else None


def _ensure_additional_gids(spec: Spec) -> None:
    """Put the primary gid first in ``additionalGids`` unless it is already listed."""
    u = _user(spec)
    gids = list(u.get("additionalGids") or [])
    if u.get("gid", 0) not in gids:
        gids.insert(0, u.get("gid", 0))
    u["additionalGids"] = gids


def _set_ids(spec: Spec, uid: int, gid: int) -> None:
    u = _user(spec)
    u["uid"], u["gid"] = uid, gid


def with_uid_gid(uid: int, gid: int) -> SpecOpt:
    """Set uid and gid as given, no lookup (``WithUIDGID``)."""
    u_ = _int(uid, "uid", 0, MAX_ID)
    g_ = _int(gid, "gid", 0, MAX_ID)

    def _with_uid_gid(spec: Spec, ctx: SpecContext) -> None:
        _user(spec).pop("additionalGids", None)
        _set_ids(spec, u_, g_)
        _ensure_additional_gids(spec)

    return _with_uid_gid


def with_user_id(uid: int) -> SpecOpt:
    """uid and its primary gid from the image's ``/etc/passwd``; a uid not listed there (or no
    ``/etc/passwd``) runs with gid 0 (``WithUserID``)."""
    u_ = _int(uid, "uid", 0, MAX_ID)

    def _with_user_id(spec: Spec, ctx: SpecContext) -> None:
        _user(spec).pop("additionalGids", None)
        root = _root_for_lookup(spec, ctx)
        try:
            found = _find_user(root, lambda u: u.uid == u_)
        except FileNotFoundError:
            found = None
        _set_ids(spec, u_, found.gid if found else 0)
        _ensure_additional_gids(spec)

    return _with_user_id


def with_username(name: str) -> SpecOpt:
    """uid and gid of ``name`` in the image's ``/etc/passwd``; unknown name → InvalidArgument."""

    def _with_username(spec: Spec, ctx: SpecContext) -> None:
        _user(spec).pop("additionalGids", None)
        found = _user_by_name(_root_for_lookup(spec, ctx), name)
        _set_ids(spec, found.uid, found.gid)
        _ensure_additional_gids(spec)

    return _with_username


def with_user(userstr: str, *, additional_gids: bool = True) -> SpecOpt:
    """Run as ``userstr``: ``uid``, ``name``, ``uid:gid``, ``name:group``, ``uid:group`` or
    ``name:gid`` (OCI image-spec ``User``), containerd's ``WithUser``.

    Names are resolved in the rootfs's ``/etc/passwd`` and ``/etc/group``; a bare uid not in
    ``/etc/passwd`` gets gid 0. ``uid:gid`` needs no lookup. With ``additional_gids`` (the
    default, as the CRI and the image-config path do) the user's supplementary groups from
    ``/etc/group`` follow (:func:`with_additional_gids`). ``additionalGids`` always starts
    with the primary gid.
    """
    if not isinstance(userstr, str):
        raise InvalidArgument(f"user must be a string, not {userstr!r}")
    parts = userstr.split(":")
    if len(parts) > 2:
        raise InvalidArgument(f"invalid USER value {userstr}")

    def _with_user(spec: Spec, ctx: SpecContext) -> None:
        if len(parts) == 1:
            uid = _parse_id(parts[0])
            if uid is None:
                with_username(parts[0])(spec, ctx)
            else:
                with_user_id(uid)(spec, ctx)
        else:
            _user(spec).pop("additionalGids", None)
            uid = _parse_id(parts[0])
            gid = _parse_id(parts[1])
            if uid is None or gid is None:
                root = _root_for_lookup(spec, ctx)
                if uid is None:
                    uid = _user_by_name(root, parts[0]).uid
                if gid is None:
                    gid = _gid_by_name(root, parts[1])
            _set_ids(spec, uid, gid)
            _ensure_additional_gids(spec)
        if additional_gids:
            with_additional_gids(userstr)(spec, ctx)

    return _with_user


def with_additional_gids(userstr: str) -> SpecOpt:
    """Supplementary groups of a user from the image's ``/etc/group`` (``WithAdditionalGIDs``).

    ``userstr`` is a uid or a name (a ``user:group`` string counts by its user part). A uid is
    turned into a name through ``/etc/passwd``; a uid not listed there, or no ``/etc/group``,
    means no supplementary groups. Groups named like the user are skipped (their gid is the
    primary group). The primary gid is always first.
    """
    who = userstr.split(":", 1)[0] if isinstance(userstr, str) else ""

    def _with_additional_gids(spec: Spec, ctx: SpecContext) -> None:
        root = _root_for_lookup(spec, ctx)
        user = _user(spec)
        user.pop("additionalGids", None)
        try:
            username = who
            uid = _parse_id(who)
            if uid is not None:
                try:
                    found = _find_user(root, lambda u: u.uid == uid)
                except FileNotFoundError:
                    found = None
                if found is None:
                    return
                username = found.name
            try:
                gids = [
                    g.gid
                    for g in user_mod.groups(root, lambda g: g.name != username and username in g.members)
                ]
            except FileNotFoundError:
                return
            except OSError as exc:
                raise _lookup_error("/etc/group", exc) from exc
            if gids:
                user["additionalGids"] = gids
        finally:
            _ensure_additional_gids(spec)

    return _with_additional_gids


def with_append_additional_groups(*groups: str) -> SpecOpt:
    """Add supplementary groups given as gids or names from ``/etc/group``."""

    def _with_append_additional_groups(spec: Spec, ctx: SpecContext) -> None:
        user = _user(spec)
        gids = list(user.get("additionalGids") or [])
        root: str | None = None
        for g in groups:
            gid = _parse_id(g, 2**32 - 1)
            if gid is None:
                root = root or _root_for_lookup(spec, ctx)
                gid = _gid_by_name(root, g)
            gids.append(gid)
        user["additionalGids"] = gids
        _ensure_additional_gids(spec)

    return _with_append_additional_groups


# --- root and mounts ----------------------------------------------------------------------


def with_rootfs_path(path: str) -> SpecOpt:
    def _with_rootfs_path(spec: Spec, ctx: SpecContext) -> None:
        spec.setdefault("root", {})["path"] = path

    return _with_rootfs_path


@_Flag
def with_readonly_rootfs(spec: Spec, ctx: SpecContext) -> None:
    """Mount the root filesystem read-only (``WithRootFSReadonly``)."""
    spec.setdefault("root", {"path": ""})["readonly"] = True


def _mount(m: Any) -> dict[str, Any]:
    if not isinstance(m, Mapping):
        raise InvalidArgument(f"mount must be a mapping, got {m!r}")
    dest = m.get("destination")
    if not isinstance(dest, str) or not dest.startswith("/"):
        raise InvalidArgument(f"mount destination must be an absolute path, got {dest!r}")
    out: dict[str, Any] = {"destination": dest}
    for k in ("type", "source"):
        v = m.get(k) or ""
        if not isinstance(v, str):
            raise InvalidArgument(f"mount {k} must be a string, got {v!r}")
        _set(out, k, v)
    _set(out, "options", _strings(m.get("options"), "mount options"))
    for k, v in m.items():  # uidMappings/gidMappings and future fields pass through
        if k not in out and k not in ("type", "source", "options"):
            out[k] = copy.deepcopy(v)
    return out


def with_mounts(mounts: Iterable[Mapping[str, Any]]) -> SpecOpt:
    """Add mounts; one with the destination of an existing mount replaces it."""
    items = [_mount(m) for m in mounts]

    def _with_mounts(spec: Spec, ctx: SpecContext) -> None:
        current = list(spec.get("mounts") or [])
        for m in items:
            dest = posixpath.normpath(m["destination"])
            current = [c for c in current if posixpath.normpath(c.get("destination", "")) != dest]
            current.append(copy.deepcopy(m))
        _set(spec, "mounts", current)

    return _with_mounts


def without_mounts(*destinations: str) -> SpecOpt:
    """Remove the mounts at these destinations (``WithoutMounts``)."""
    dests = set(destinations)

    def _without_mounts(spec: Spec, ctx: SpecContext) -> None:
        kept = [m for m in spec.get("mounts") or [] if posixpath.normpath(m.get("destination", "")) not in dests]
        _set(spec, "mounts", kept)

    return _without_mounts


def _writeable(fstype: str) -> SpecOpt:
    def opt(spec: Spec, ctx: SpecContext) -> None:
        for m in spec.get("mounts") or []:
            if m.get("type") == fstype and m.get("options"):
                m["options"] = ["rw" if o == "ro" else o for o in m["options"]]

    return opt


with_writeable_sysfs = _Flag(_writeable("sysfs"))
with_writeable_sysfs.__name__ = "with_writeable_sysfs"
with_writeable_cgroupfs = _Flag(_writeable("cgroup"))
with_writeable_cgroupfs.__name__ = "with_writeable_cgroupfs"


def with_masked_paths(paths: Iterable[str] | None) -> SpecOpt:
    values = _strings(paths, "masked paths")

    def _with_masked_paths(spec: Spec, ctx: SpecContext) -> None:
        _set(_linux(spec), "maskedPaths", list(values))

    return _with_masked_paths


def with_readonly_paths(paths: Iterable[str] | None) -> SpecOpt:
    values = _strings(paths, "readonly paths")

    def _with_readonly_paths(spec: Spec, ctx: SpecContext) -> None:
        _set(_linux(spec), "readonlyPaths", list(values))

    return _with_readonly_paths


# --- resources ----------------------------------------------------------------------------


def with_memory_limit(limit: int) -> SpecOpt:
    """Memory limit in bytes."""
    value = _int(limit, "memory limit", 1, 2**63 - 1)

    def _with_memory_limit(spec: Spec, ctx: SpecContext) -> None:
        _resources(spec).setdefault("memory", {})["limit"] = value

    return _with_memory_limit


def with_memory_swap(swap: int) -> SpecOpt:
    """Memory + swap limit in bytes (-1: unlimited)."""
    value = _int(swap, "memory swap", -1, 2**63 - 1)

    def _with_memory_swap(spec: Spec, ctx: SpecContext) -> None:
        _resources(spec).setdefault("memory", {})["swap"] = value

    return _with_memory_swap


def with_cpu_cfs(quota: int, period: int) -> SpecOpt:
    """CFS quota and period in microseconds (``WithCPUCFS``)."""
    q = _int(quota, "cpu quota", -1, 2**63 - 1)
    p = _int(period, "cpu period", 0, 2**64 - 1)

    def _with_cpu_cfs(spec: Spec, ctx: SpecContext) -> None:
        cpu = _cpu(spec)
        cpu["quota"], cpu["period"] = q, p

    return _with_cpu_cfs


def with_cpus(cpus: float) -> SpecOpt:
    """Limit to ``cpus`` CPUs: period 100000 µs, quota ``int(cpus * 100000)``, as ``ctr run --cpus``.

    (containerd's own ``WithCPUs`` sets the cpuset; that is :func:`with_cpuset_cpus` here.)
    """
    if isinstance(cpus, bool) or not isinstance(cpus, (int, float)) or not cpus > 0 or cpus == float("inf"):
        raise InvalidArgument(f"cpus must be a positive number, got {cpus!r}")
    return with_cpu_cfs(int(cpus * float(DEFAULT_CPU_PERIOD)), DEFAULT_CPU_PERIOD)


def with_cpuset_cpus(cpus: str) -> SpecOpt:
    """CPUs the container may run on, e.g. ``"0-2,4"`` (containerd's ``WithCPUs``)."""
    if not isinstance(cpus, str) or not re.fullmatch(r"[0-9,\-]*", cpus):
        raise InvalidArgument(f"invalid cpuset {cpus!r}")

    def _with_cpuset_cpus(spec: Spec, ctx: SpecContext) -> None:
        _set(_cpu(spec), "cpus", cpus)

    return _with_cpuset_cpus


def with_cpuset_mems(mems: str) -> SpecOpt:
    if not isinstance(mems, str) or not re.fullmatch(r"[0-9,\-]*", mems):
        raise InvalidArgument(f"invalid cpuset mems {mems!r}")

    def _with_cpuset_mems(spec: Spec, ctx: SpecContext) -> None:
        _set(_cpu(spec), "mems", mems)

    return _with_cpuset_mems


def with_cpu_shares(shares: int) -> SpecOpt:
    value = _int(shares, "cpu shares", 0, 2**64 - 1)

    def _with_cpu_shares(spec: Spec, ctx: SpecContext) -> None:
        _cpu(spec)["shares"] = value

    return _with_cpu_shares


def with_pids_limit(limit: int) -> SpecOpt:
    """Maximum number of tasks in the container's cgroup (0 or -1: unlimited)."""
    value = _int(limit, "pids limit", -1, 2**63 - 1)

    def _with_pids_limit(spec: Spec, ctx: SpecContext) -> None:
        _resources(spec)["pids"] = {"limit": value}

    return _with_pids_limit


def with_cgroup(path: str) -> SpecOpt:
    """Set ``linux.cgroupsPath`` (``""`` removes it: the runtime picks one)."""
    if not isinstance(path, str):
        raise InvalidArgument(f"cgroup path must be a string, not {path!r}")

    def _with_cgroup(spec: Spec, ctx: SpecContext) -> None:
        _set(_linux(spec), "cgroupsPath", path)

    return _with_cgroup


@_Flag
def with_namespaced_cgroup(spec: Spec, ctx: SpecContext) -> None:
    """``cgroupsPath`` = ``/<namespace>/<id>`` (``WithNamespacedCgroup``)."""
    _linux(spec)["cgroupsPath"] = posixpath.join("/", ctx.namespace, ctx.id)


# --- capabilities -------------------------------------------------------------------------


def _caps(caps: Iterable[str]) -> list[str]:
    values = _strings(caps, "capabilities")
    for c in values:
        if not c.startswith("CAP_"):
            raise InvalidArgument(f"capabilities must be specified with 'CAP_' prefix, got {c!r}")
    return values


_CAP_SETS = ("bounding", "effective", "permitted")


def with_capabilities(caps: Iterable[str]) -> SpecOpt:
    """Bounding, effective and permitted sets become ``caps``."""
    values = _caps(caps)

    def _with_capabilities(spec: Spec, ctx: SpecContext) -> None:
        c = _capabilities(spec)
        for k in _CAP_SETS:
            _set(c, k, list(values))

    return _with_capabilities


def with_added_capabilities(caps: Iterable[str]) -> SpecOpt:
    values = _caps(caps)

    def _with_added_capabilities(spec: Spec, ctx: SpecContext) -> None:
        c = _capabilities(spec)
        for k in _CAP_SETS:
            cur = list(c.get(k) or [])
            cur += [v for v in values if v not in cur]
            _set(c, k, cur)

    return _with_added_capabilities


def with_dropped_capabilities(caps: Iterable[str]) -> SpecOpt:
    values = set(_caps(caps))

    def _with_dropped_capabilities(spec: Spec, ctx: SpecContext) -> None:
        c = _capabilities(spec)
        for k in _CAP_SETS:
            _set(c, k, [v for v in c.get(k) or [] if v not in values])

    return _with_dropped_capabilities


def with_ambient_capabilities(caps: Iterable[str]) -> SpecOpt:
    values = _caps(caps)

    def _with_ambient_capabilities(spec: Spec, ctx: SpecContext) -> None:
        c = _capabilities(spec)
        _set(c, "inheritable", list(values))
        _set(c, "ambient", list(values))

    return _with_ambient_capabilities


def current_capabilities(status: str = "/proc/self/status") -> list[str]:
    """The effective capabilities of this process, by name (``pkg/cap.Current``)."""
    with open(status, encoding="ascii", errors="replace") as f:
        for line in f:
            if line.startswith("CapEff:"):
                bits = int(line.split(":", 1)[1].strip(), 16)
                return [name for i, name in enumerate(KNOWN_CAPS) if bits >> i & 1]
    return []


@_Flag
def with_all_current_capabilities(spec: Spec, ctx: SpecContext) -> None:
    """The caller's effective capabilities (``WithAllCurrentCapabilities``)."""
    with_capabilities(current_capabilities())(spec, ctx)


@_Flag
def with_all_known_capabilities(spec: Spec, ctx: SpecContext) -> None:
    with_capabilities(KNOWN_CAPS)(spec, ctx)


# --- namespaces ---------------------------------------------------------------------------


def _ns_type(ns: str) -> str:
    if ns not in NAMESPACE_TYPES:
        raise InvalidArgument(f"unknown Linux namespace type {ns!r} (one of {', '.join(NAMESPACE_TYPES)})")
    return ns


def with_host_namespace(ns: str) -> SpecOpt:
    """Share the host's namespace of type ``ns`` (remove it from the spec)."""
    typ = _ns_type(ns)

    def _with_host_namespace(spec: Spec, ctx: SpecContext) -> None:
        linux = _linux(spec)
        _set(linux, "namespaces", [n for n in linux.get("namespaces") or [] if n.get("type") != typ])

    return _with_host_namespace


def with_linux_namespace(ns: str, path: str = "") -> SpecOpt:
    """A new namespace of type ``ns``, or join the one at ``path``; replaces one of that type."""
    typ = _ns_type(ns)
    if not isinstance(path, str) or (path and not path.startswith("/")):
        raise InvalidArgument(f"namespace path must be absolute, got {path!r}")
    entry = {"type": typ, "path": path} if path else {"type": typ}

    def _with_linux_namespace(spec: Spec, ctx: SpecContext) -> None:
        linux = _linux(spec)
        nss = list(linux.get("namespaces") or [])
        for i, n in enumerate(nss):
            if n.get("type") == typ:
                nss[i] = dict(entry)
                break
        else:
            nss.append(dict(entry))
        linux["namespaces"] = nss

    return _with_linux_namespace


def with_user_namespace(uid_maps: Iterable[Mapping[str, int]], gid_maps: Iterable[Mapping[str, int]]) -> SpecOpt:
    """A user namespace with these ``{containerID, hostID, size}`` mappings (appended)."""

    def norm(maps, what):
        out = []
        for m in maps:
            if not isinstance(m, Mapping):
                raise InvalidArgument(f"{what} must be mappings")
            out.append({k: _int(m.get(k), f"{what} {k}", 0, 2**32 - 1) for k in ("containerID", "hostID", "size")})
        return out

    uids, gids = norm(uid_maps, "uid mapping"), norm(gid_maps, "gid mapping")

    def _with_user_namespace(spec: Spec, ctx: SpecContext) -> None:
        linux = _linux(spec)
        if not any(n.get("type") == "user" for n in linux.get("namespaces") or []):
            linux["namespaces"] = list(linux.get("namespaces") or []) + [{"type": "user"}]
        _set(linux, "uidMappings", list(linux.get("uidMappings") or []) + uids)
        _set(linux, "gidMappings", list(linux.get("gidMappings") or []) + gids)

    return _with_user_namespace


def with_cgroup_namespace_if_unified(mode: str | None = None) -> SpecOpt:
    """A private cgroup namespace on a cgroup v2-only host (what the CRI does for
    non-privileged containers); nothing on v1 or hybrid hosts. ``mode`` overrides detection."""

    def _with_cgroup_namespace_if_unified(spec: Spec, ctx: SpecContext) -> None:
        if (mode or cgroup_mode()) == CGROUP_UNIFIED:
            with_linux_namespace("cgroup")(spec, ctx)

    return _with_cgroup_namespace_if_unified


# --- misc linux ---------------------------------------------------------------------------


def with_annotations(annotations: Mapping[str, str]) -> SpecOpt:
    """Add or replace annotations."""
    values = _str_map(annotations, "annotations")

    def _with_annotations(spec: Spec, ctx: SpecContext) -> None:
        spec.setdefault("annotations", {}).update(values)

    return _with_annotations


def with_sysctls(sysctls: Mapping[str, str]) -> SpecOpt:
    """Add or replace ``linux.sysctl`` entries (runc accepts only namespaced ones)."""
    values = _str_map(sysctls, "sysctls")
    for k in values:
        if not k or k.startswith(".") or "/" in k or ".." in k:
            raise InvalidArgument(f"invalid sysctl name {k!r}")

    def _with_sysctls(spec: Spec, ctx: SpecContext) -> None:
        _linux(spec).setdefault("sysctl", {}).update(values)

    return _with_sysctls


def with_seccomp(profile: Mapping[str, Any] | str | os.PathLike[str] | None = None, **default_kw: Any) -> SpecOpt:
    """Set the seccomp profile: containerd's default for the spec's capabilities when
    ``profile`` is None (apply it after the capability options), else the given
    ``LinuxSeccomp`` object or the path of a JSON file holding one (``seccomp.WithProfile``).
    ``default_kw`` (``arch``, ``kernel_release``) go to :func:`seccomp.default_profile`."""
    loaded: dict[str, Any] | None = None
    if isinstance(profile, (str, os.PathLike)):
        try:
            with open(profile, "rb") as f:
                loaded = json.load(f)
        except OSError as exc:
            raise InvalidArgument(f"cannot load seccomp profile {quote(os.fspath(profile))}: {exc.strerror}") from exc
        except ValueError as exc:
            raise InvalidArgument(f"decoding seccomp profile failed {quote(os.fspath(profile))}: {exc}") from exc
    elif profile is not None:
        if not isinstance(profile, Mapping):
            raise InvalidArgument("seccomp profile must be a mapping or a file path")
        loaded = copy.deepcopy(dict(profile))
    if loaded is not None and (not isinstance(loaded, dict) or not isinstance(loaded.get("defaultAction"), str)):
        raise InvalidArgument("seccomp profile must be a JSON object with a defaultAction")

    def _with_seccomp(spec: Spec, ctx: SpecContext) -> None:
        value = copy.deepcopy(loaded) if loaded is not None else seccomp_mod.default_profile(spec, **default_kw)
        _linux(spec)["seccomp"] = value

    return _with_seccomp


@_Flag
def with_seccomp_unconfined(spec: Spec, ctx: SpecContext) -> None:
    _linux(spec).pop("seccomp", None)


# --- devices ------------------------------------------------------------------------------


def _permissions(p: str) -> str:
    if not isinstance(p, str) or not p or set(p) - set("rwm"):
        raise InvalidArgument(f"device permissions must be a combination of r, w and m, got {p!r}")
    return p


def _cgroup_rule(allow: bool, typ: str = "", major: int | None = None, minor: int | None = None, access: str = RWM):
    r: dict[str, Any] = {"allow": allow}
    if typ:
        r["type"] = typ
    if major is not None:
        r["major"] = major
    if minor is not None:
        r["minor"] = minor
    if access:
        r["access"] = access
    return r


def device_from_path(path: str) -> dict[str, Any] | None:
    """The ``linux.devices`` entry for the device node at ``path``; None if it is not a
    block or character device."""
    st = os.lstat(path)
    if stat.S_ISBLK(st.st_mode):
        typ = "b"
    elif stat.S_ISCHR(st.st_mode):
        typ = "c"
    else:
        return None
    return {
        "path": path,
        "type": typ,
        "major": os.major(st.st_rdev),
        "minor": os.minor(st.st_rdev),
        "fileMode": stat.S_IMODE(st.st_mode),
        "uid": st.st_uid,
        "gid": st.st_gid,
    }


_SKIP_DIRS = frozenset(("pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"))


def host_devices(path: str = "/dev", container_path: str = "") -> list[dict[str, Any]]:
    """Device nodes at ``path`` (recursively, skipping pts, shm, …; containerd's ``getDevices``)."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise InvalidArgument(f"error stating device path {quote(path)}: {exc.strerror}") from exc
    if not stat.S_ISDIR(st.st_mode):
        dev = device_from_path(path)
        if dev is None:
            raise InvalidArgument(f"{quote(path)}: not a device node")
        if container_path:
            dev["path"] = container_path
        return [dev]
    out = []
    for entry in sorted(os.scandir(path), key=lambda e: e.name):
        if entry.is_dir(follow_symlinks=False):
            if entry.name in _SKIP_DIRS:
                continue
            cp = posixpath.join(container_path, entry.name) if container_path else ""
            out += host_devices(entry.path, cp)
        elif entry.name == "console":
            continue
        else:
            try:
                dev = device_from_path(entry.path)
            except FileNotFoundError:
                continue
            if dev is None:
                continue
            if container_path:
                dev["path"] = posixpath.join(container_path, entry.name)
            out.append(dev)
    return out


def with_devices(device_path: str, container_path: str = "", permissions: str = RWM) -> SpecOpt:
    """Add the device at ``device_path`` (or every device below it) with a cgroup rule
    allowing ``permissions`` (containerd's ``WithDevices``)."""
    perms = _permissions(permissions)

    def _with_devices(spec: Spec, ctx: SpecContext) -> None:
        devs = host_devices(device_path, container_path)
        linux = _linux(spec)
        res = _resources(spec)
        linux["devices"] = list(linux.get("devices") or []) + devs
        res["devices"] = list(res.get("devices") or []) + [
            _cgroup_rule(True, d["type"], d["major"], d["minor"], perms) for d in devs
        ]

    return _with_devices


def with_linux_devices(devices: Iterable[Mapping[str, Any]]) -> SpecOpt:
    """Append ``linux.devices`` entries as given (no cgroup rule)."""
    items = []
    for d in devices:
        if not isinstance(d, Mapping) or not isinstance(d.get("path"), str) or d.get("type") not in ("c", "b", "u", "p"):
            raise InvalidArgument(f"device needs a path and a type of c, b, u or p, got {d!r}")
        items.append(copy.deepcopy(dict(d)))

    def _with_linux_devices(spec: Spec, ctx: SpecContext) -> None:
        linux = _linux(spec)
        linux["devices"] = list(linux.get("devices") or []) + copy.deepcopy(items)

    return _with_linux_devices


@_Flag
def with_all_devices_allowed(spec: Spec, ctx: SpecContext) -> None:
    """Allow read, write and mknod on every device (``WithAllDevicesAllowed``)."""
    _resources(spec)["devices"] = [_cgroup_rule(True)]


@_Flag
def with_parent_cgroup_devices(spec: Spec, ctx: SpecContext) -> None:
    """Inherit the device rules of the parent cgroup."""
    _resources(spec).pop("devices", None)


@_Flag
def with_host_devices(spec: Spec, ctx: SpecContext) -> None:
    """Every device node of the host's ``/dev`` (``WithHostDevices``)."""
    linux = _linux(spec)
    linux["devices"] = list(linux.get("devices") or []) + host_devices("/dev")


_DEFAULT_UNIX_DEVICES = (
    (1, 3),  # /dev/null
    (1, 8),  # /dev/random
    (1, 7),  # /dev/full
    (5, 0),  # /dev/tty
    (1, 5),  # /dev/zero
    (1, 9),  # /dev/urandom
    (5, 1),  # /dev/console
    (136, None),  # /dev/pts/*
    (5, 2),  # /dev/ptmx
)


@_Flag
def with_default_unix_devices(spec: Spec, ctx: SpecContext) -> None:
    """Allow the standard character devices (null, zero, random, tty, pts, …)."""
    res = _resources(spec)
    res["devices"] = list(res.get("devices") or []) + [
        _cgroup_rule(True, "c", major, minor) for major, minor in _DEFAULT_UNIX_DEVICES
    ]


def with_dev_shm_size(kb: int) -> SpecOpt:
    """Size of the ``/dev/shm`` tmpfs in KiB."""
    size = _int(kb, "/dev/shm size", 1)

    def _with_dev_shm_size(spec: Spec, ctx: SpecContext) -> None:
        for m in spec.get("mounts") or []:
            if posixpath.normpath(m.get("destination", "")) == "/dev/shm" and m.get("source") == "shm" and m.get("type") == "tmpfs":
                m["options"] = [o for o in m.get("options") or [] if not o.startswith("size=")] + [f"size={size}k"]
                return
        raise InvalidArgument("no /dev/shm mount specified")

    return _with_dev_shm_size


# --- privileged ---------------------------------------------------------------------------


@_Flag
def with_privileged(spec: Spec, ctx: SpecContext) -> None:
    """A privileged container: every capability this process has, no masked or read-only
    paths, writable sysfs and cgroupfs, no SELinux label, AppArmor or seccomp, and every
    device allowed (containerd's ``WithPrivileged`` plus ``WithAllDevicesAllowed``, as
    ``ctr run --privileged`` and the CRI combine them)."""
    compose(
        with_all_current_capabilities,
        with_masked_paths(None),
        with_readonly_paths(None),
        with_writeable_sysfs,
        with_writeable_cgroupfs,
        with_selinux_label(""),
        with_apparmor_profile(""),
        with_seccomp_unconfined,
        with_all_devices_allowed,
    )(spec, ctx)
