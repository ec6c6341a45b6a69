"""User options: uid/gid from a number or from ``/etc/passwd`` and ``/etc/group`` read in
the rootfs (:func:`pycontainerd.oci.user.read_in_root`, which never follows a link out
of it), and supplementary groups."""

from __future__ import annotations

import re
from collections.abc import Callable

from ...errdefs import InvalidArgument, quote
from .. import user as user_mod
from ..spec import Spec
from .base import MAX_ID, SpecContext, SpecOpt, _int, _user


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
