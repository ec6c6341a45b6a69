"""OCI specs for pod sandboxes (the pause container) and CRI containers, after containerd
1.6's ``sandboxContainerSpec`` and ``containerSpec``, built from the composable options of
:mod:`pycontainerd.oci.opts` on containerd's default spec.

What a CRI container gets, in order (later options win):

- no ``/run`` tmpfs, no default rlimits/seccomp/AppArmor (the security context decides);
- process: the kubelet's command/args against the image's Entrypoint/Cmd
  (:func:`process_args`), ``PATH`` default, ``HOSTNAME=<sandbox hostname>``, the image's
  Env, then the config's envs; working dir from the config or the image; tty;
- mounts: the CRI mounts (bind, ``ro``/``rw``, ``rprivate``/``rslave``/``rshared``; the
  host path must exist) plus the sandbox's ``/etc/hostname``, ``/etc/hosts``,
  ``/etc/resolv.conf`` and ``/dev/shm`` unless the config mounts those paths itself;
- masked/readonly paths only as the security context lists them; devices; capabilities
  add/drop (``ALL`` understood); privileged (only in a privileged sandbox); no_new_privs;
  read-only rootfs; user from run_as_username / run_as_user[:run_as_group] / the image;
  supplemental groups; seccomp RuntimeDefault/Unconfined/Localhost;
- resources (cpu period/quota/shares, cpuset, memory + swap, hugepages, unified), cgroup
  ``<sandbox cgroup_parent>/<id>``, ``oomScoreAdj`` (clamped, see
  :func:`~pycontainerd.cri.util.clamp_oom_score_adj`);
- the sandbox's network, IPC and UTS namespaces (``/proc/<pause pid>/ns/*``), its PID
  namespace unless the config asks for its own (or the host's), its user namespace when the
  pod has one (:mod:`.userns`);
- annotations ``io.kubernetes.cri.container-type`` etc.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable, Mapping
from typing import Any

from ..api.cri.runtime.v1 import api_pb2 as cri
from ..errdefs import FailedPrecondition, InvalidArgument, Unknown, quote
from ..oci import opts as o
from ..oci.spec import CGROUP_UNIFIED, DEFAULT_UNIX_ENV, Spec, cgroup_mode
from . import userns
from .util import DEV_SHM, ETC_HOSTNAME, ETC_HOSTS, RESOLV_CONF

ANN_CONTAINER_TYPE = "io.kubernetes.cri.container-type"
ANN_SANDBOX_ID = "io.kubernetes.cri.sandbox-id"
ANN_SANDBOX_NAMESPACE = "io.kubernetes.cri.sandbox-namespace"
ANN_SANDBOX_UID = "io.kubernetes.cri.sandbox-uid"
ANN_SANDBOX_NAME = "io.kubernetes.cri.sandbox-name"
ANN_SANDBOX_LOG_DIR = "io.kubernetes.cri.sandbox-log-directory"
ANN_CONTAINER_NAME = "io.kubernetes.cri.container-name"
ANN_IMAGE_NAME = "io.kubernetes.cri.image-name"

DEFAULT_SANDBOX_OOM_ADJ = -998
DEFAULT_SANDBOX_CPU_SHARES = 2


def image_section(image_config: Mapping[str, Any]) -> Mapping[str, Any]:
    """The ``config`` object of an image config document (or the object itself)."""
    if "config" in image_config or "rootfs" in image_config:
        return image_config.get("config") or {}
    return image_config


def process_args(command: Iterable[str], args: Iterable[str], image_config: Mapping[str, Any]) -> list[str]:
    """The kubelet's rules: ``command`` replaces the image's Entrypoint *and* drops its Cmd;
    ``args`` replaces Cmd; with neither, Entrypoint + Cmd. Raises :class:`InvalidArgument`
    when nothing is left to run."""
    cfg = image_section(image_config)
    command, args = list(command), list(args)
    if command:
        out = command + args
    else:
        out = list(cfg.get("Entrypoint") or []) + (args or list(cfg.get("Cmd") or []))
    if not out:
        raise InvalidArgument("no command specified")
    return out


def _set_process(args: list[str], env: list[str], cwd: str) -> o.SpecOpt:
    def opt(spec: Spec, ctx: o.SpecContext) -> None:
        p = spec.setdefault("process", {})
        p["args"] = list(args)
        if env:
            p["env"] = list(env)
        else:
            p.pop("env", None)
        p["cwd"] = cwd or "/"

    return opt


def _without_default_security(spec: Spec, ctx: o.SpecContext) -> None:
    p = spec.setdefault("process", {})
    p.pop("apparmorProfile", None)
    p.pop("rlimits", None)
    spec.get("linux", {}).pop("seccomp", None)


def _without_ambient(spec: Spec, ctx: o.SpecContext) -> None:
    caps = spec.get("process", {}).get("capabilities")
    if caps:
        caps.pop("ambient", None)


def _set_namespace(ns: str, path: str | None) -> o.SpecOpt:
    """``path`` None: the host's (remove); ``""``: a new one; else join ``path``."""
    return o.with_host_namespace(ns) if path is None else o.with_linux_namespace(ns, path)


def _additional_gids(gids: Iterable[int]) -> o.SpecOpt:
    values = [int(g) for g in gids]

    def opt(spec: Spec, ctx: o.SpecContext) -> None:
        if not values:
            return
        user = spec.setdefault("process", {}).setdefault("user", {"uid": 0, "gid": 0})
        cur = list(user.get("additionalGids") or [])
        cur += [g for g in values if g not in cur]
        user["additionalGids"] = cur

    return opt


def _user_opts(userstr: str, policy: int, supplemental: Iterable[int], *, default_groups: bool) -> list[o.SpecOpt]:
    """User, group and supplementary groups. ``Merge`` (the default): the user's groups in the
    image's ``/etc/group`` plus ``supplemental``; ``Strict``: only the primary gid and
    ``supplemental``. ``default_groups``: with no user, root's ``/etc/group`` groups (Merge)."""
    merge = policy != cri.Strict
    opts: list[o.SpecOpt] = []
    if userstr:
        opts.append(o.with_user(userstr, additional_gids=merge))
    elif default_groups and merge:
        opts.append(o.with_additional_gids("root"))
    opts.append(_additional_gids(supplemental))
    return opts


def user_string(username: str, uid: cri.Int64Value | None, gid: cri.Int64Value | None) -> str:
    """containerd's ``generateUserString``: ``name`` or ``uid``, plus ``:gid``.

    Raises :class:`InvalidArgument` for a group without a user."""
    user = username or (str(uid.value) if uid is not None else "")
    if gid is not None:
        if not user:
            raise InvalidArgument(f"user group {str(gid.value)!r} is specified without user")
        user += f":{gid.value}"
    return user


def _opt_field(msg, name: str):
    return getattr(msg, name) if msg.HasField(name) else None


def seccomp_opts(profile: cri.SecurityProfile | None, legacy_path: str, privileged: bool) -> list[o.SpecOpt]:
    """The seccomp option: none for privileged or unconfined, containerd's default profile
    for RuntimeDefault, a JSON file for Localhost (a bad path is :class:`InvalidArgument`)."""
    if privileged:
        return [o.with_seccomp_unconfined]
    if profile is None:
        if legacy_path in ("", "unconfined"):
            return [o.with_seccomp_unconfined]
        if legacy_path in ("runtime/default", "docker/default"):
            return [o.with_seccomp()]
        if legacy_path.startswith("localhost/"):
            return [o.with_seccomp(legacy_path[len("localhost/"):])]
        raise InvalidArgument(f"unsupported seccomp profile {quote(legacy_path)}")
    if profile.profile_type == cri.SecurityProfile.RuntimeDefault:
        return [o.with_seccomp()]
    if profile.profile_type == cri.SecurityProfile.Unconfined:
        return [o.with_seccomp_unconfined]
    ref = profile.localhost_ref
    if not ref or not os.path.isabs(ref):
        raise InvalidArgument(f"seccomp localhost profile {quote(ref)} must be an absolute path")
    return [o.with_seccomp(ref)]


def apparmor_opts(profile: cri.SecurityProfile | None, legacy: str, privileged: bool) -> list[o.SpecOpt]:
    if privileged:
        return [o.with_apparmor_profile("")]
    local = ""
    if profile is not None and profile.profile_type == cri.SecurityProfile.Localhost:
        local = profile.localhost_ref
    elif profile is None and legacy.startswith("localhost/"):
        local = legacy[len("localhost/"):]
    if not local:
        return []
    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            enabled = f.read().strip() == "Y"
    except OSError:
        enabled = False
    if not enabled:
        raise InvalidArgument(f"apparmor profile {quote(local)} requested but AppArmor is not enabled on this host")
    return [o.with_apparmor_profile(local)]


def capability_opts(caps: cri.Capability | None) -> list[o.SpecOpt]:
    """Add/drop with ``ALL`` first (so ``add ALL, drop CHOWN`` works), names without ``CAP_``.

    ``ALL`` is every capability the daemon itself holds (its effective set, as containerd's
    ``cap.Current``), not every one the kernel knows: runc cannot give a container what its
    caller lacks (``unable to apply caps: operation not permitted``)."""
    if caps is None:
        return []
    out: list[o.SpecOpt] = []
    adds = [c.upper() for c in caps.add_capabilities]
    drops = [c.upper() for c in caps.drop_capabilities]
    if "ALL" in adds:
        out.append(o.with_all_current_capabilities)
    if "ALL" in drops:
        out.append(o.with_capabilities([]))

    def prefixed(names: list[str]) -> list[str]:
        return [n if n.startswith("CAP_") else "CAP_" + n for n in names if n != "ALL"]

    out.append(o.with_added_capabilities(prefixed(adds)))
    out.append(o.with_dropped_capabilities(prefixed(drops)))
    return out


def resources_opts(r: cri.LinuxContainerResources | None, *, swap: bool, hugetlb: bool) -> list[o.SpecOpt]:
    """containerd's ``WithResources``: every non-zero field is applied."""
    if r is None:
        return []

    def opt(spec: Spec, ctx: o.SpecContext) -> None:
        res = spec.setdefault("linux", {}).setdefault("resources", {})
        cpu = res.setdefault("cpu", {})
        if r.cpu_period:
            cpu["period"] = r.cpu_period
        if r.cpu_quota:
            cpu["quota"] = r.cpu_quota
        if r.cpu_shares:
            cpu["shares"] = r.cpu_shares
        if r.cpuset_cpus:
            cpu["cpus"] = r.cpuset_cpus
        if r.cpuset_mems:
            cpu["mems"] = r.cpuset_mems
        if not cpu:
            res.pop("cpu", None)
        mem = res.setdefault("memory", {})
        if r.memory_limit_in_bytes:
            mem["limit"] = r.memory_limit_in_bytes
            if not r.memory_swap_limit_in_bytes and swap:
                mem["swap"] = r.memory_limit_in_bytes
        if r.memory_swap_limit_in_bytes and swap:
            mem["swap"] = r.memory_swap_limit_in_bytes
        if not mem:
            res.pop("memory", None)
        if r.hugepage_limits:
            if hugetlb:
                res["hugepageLimits"] = [{"pageSize": h.page_size, "limit": h.limit} for h in r.hugepage_limits]
            # without the hugetlb controller the limits are dropped (tolerate_missing_hugetlb_controller)
        if r.unified:
            res.setdefault("unified", {}).update(dict(r.unified))

    return [opt]


def _ordered_mounts(mounts: Iterable[cri.Mount]) -> list[cri.Mount]:
    """Parents before children: sorted by the number of path components (stable)."""
    return sorted(mounts, key=lambda m: len(posixpath.normpath(m.container_path).split("/")))


def mount_entry(m: cri.Mount, check_propagation=None, rro_supported: bool = False) -> tuple[dict[str, Any], str]:
    """The OCI mount for a CRI mount and the rootfs propagation it needs (``""``: none).

    ``recursive_read_only`` (read-only, private propagation, a runtime with ``rro``: see
    :mod:`.features`) adds runc's ``rro`` option: submounts are read-only too.

    A missing host path is made a directory (containerd's rule). Raises
    :class:`InvalidArgument` for unsupported fields,
    :class:`FailedPrecondition` when the propagation asked for is impossible."""
    from .util import mount_of

    dst, src = m.container_path, m.host_path
    if not dst or not dst.startswith("/"):
        raise InvalidArgument(f"mount container path {quote(dst)} must be absolute")
    if not src:
        raise InvalidArgument(f"mount at {quote(dst)} has no host path")
    if "\0" in dst or "\0" in src:
        raise InvalidArgument(f"mount {quote(src)} at {quote(dst)}: a path contains a NUL byte")
    if m.recursive_read_only:
        if not m.readonly:
            raise InvalidArgument(f"mount at {quote(dst)}: recursive read-only mount needs to be read-only "
                                  "(set readonly too)")
        if m.propagation != cri.PROPAGATION_PRIVATE:
            raise InvalidArgument(f"mount at {quote(dst)}: recursive read-only mount needs private propagation, "
                                  f"not {cri.MountPropagation.Name(m.propagation)}")
        if not rro_supported:
            raise InvalidArgument(f"mount at {quote(dst)}: recursive read-only mounts are not supported by the "
                                  "OCI runtime (its 'features' lists no 'rro' mount option)")
    if list(m.uidMappings) or list(m.gidMappings):
        raise InvalidArgument(f"mount at {quote(dst)}: id-mapped mounts are not supported")
    _ensure_host_path(src)
    src = os.path.realpath(src)
    options = ["rbind"]
    rootfs_propagation = ""
    check = check_propagation or mount_of
    if m.propagation == cri.PROPAGATION_BIDIRECTIONAL:
        info = check(src)
        if not info.shared:
            raise FailedPrecondition(f"path {quote(src)} is mounted on {quote(info.mount_point)} but it is not a "
                                     "shared mount")
        options.append("rshared")
        rootfs_propagation = "rshared"
    elif m.propagation == cri.PROPAGATION_HOST_TO_CONTAINER:
        info = check(src)
        if not (info.shared or info.slave):
            raise FailedPrecondition(f"path {quote(src)} is mounted on {quote(info.mount_point)} but it is not a "
                                     "shared or slave mount")
        options.append("rslave")
        rootfs_propagation = "rslave"
    else:
        options.append("rprivate")
    options.append("ro" if m.readonly else "rw")
    if m.recursive_read_only:
        options.append("rro")
    return {"destination": dst, "type": "bind", "source": src, "options": options}, rootfs_propagation


def _ensure_host_path(src: str) -> None:
    """A host path that is not there is made, a directory (0755), as containerd's CRI does
    (kubelet's ``hostPath`` volumes of type ``""`` rely on it). Raises :class:`Unknown`
    when it cannot be looked at or made."""
    try:
        os.stat(src)
        return
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise Unknown(f"failed to stat {quote(src)}: {exc.strerror}") from exc
    try:
        os.makedirs(src, 0o755, exist_ok=True)
    except OSError as exc:
        raise Unknown(f"failed to mkdir {quote(src)}: {exc.strerror}") from exc


CGROUP_MOUNT: Mapping[str, Any] = {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                                   "options": ("nosuid", "noexec", "nodev", "relatime", "ro")}
"""What containerd's CRI mounts after a container's own mounts, so a process can read its
limits (a privileged container's is made writable)."""


def _with_cri_mounts(mounts: list[cri.Mount], check_propagation=None, rro_supported: bool = False) -> o.SpecOpt:
    entries = []
    propagation = ""
    for m in _ordered_mounts(mounts):
        entry, prop = mount_entry(m, check_propagation, rro_supported)
        entries.append(entry)
        if prop == "rshared" or (prop == "rslave" and propagation != "rshared"):
            propagation = prop

    def opt(spec: Spec, ctx: o.SpecContext) -> None:
        dests = {posixpath.normpath(e["destination"]) for e in entries}
        kept = []
        for cur in spec.get("mounts") or []:
            d = posixpath.normpath(cur.get("destination", ""))
            if d in dests or ("/dev" in dests and d.startswith("/dev/")):
                continue
            kept.append(cur)
        spec["mounts"] = kept + entries
        if CGROUP_MOUNT["destination"] not in dests:  # its own cgroups, read-only (docker's, containerd's)
            spec["mounts"].append({**CGROUP_MOUNT, "options": list(CGROUP_MOUNT["options"])})
        if propagation:
            spec.setdefault("linux", {})["rootfsPropagation"] = propagation

    return opt


def sandbox_spec_opts(sb, image_config: Mapping[str, Any], *, resolv_path: str, shm_path: str,
                      oom_score_adj: int) -> list[o.SpecOpt]:
    """Options for the pause container of sandbox ``sb`` (a :class:`~pycontainerd.cri.store.Sandbox`)."""
    from .util import cgroups_path

    config = sb.config
    cfg = image_section(image_config)
    args = list(cfg.get("Entrypoint") or []) + list(cfg.get("Cmd") or [])
    if not args:
        raise InvalidArgument(f"invalid empty entrypoint and cmd in the sandbox image {quote(sb.image)}")
    sc = config.linux.security_context
    nso = sc.namespace_options
    host_net = nso.network == cri.NODE
    opts: list[o.SpecOpt] = [
        o.without_mounts("/run"),
        _without_default_security,
        _set_process(args, list(cfg.get("Env") or []), cfg.get("WorkingDir") or "/"),
        o.with_readonly_rootfs,
    ]
    if host_net:
        opts += [_set_namespace("network", None), _set_namespace("uts", None)]
    else:
        opts.append(_set_namespace("network", sb.netns_path))
        if config.hostname:
            opts.append(o.with_hostname(config.hostname))
    if nso.pid == cri.NODE:
        opts.append(_set_namespace("pid", None))
    if nso.ipc == cri.NODE:
        opts.append(_set_namespace("ipc", None))
    opts += userns.sandbox_opts(userns.parse(nso))
    # nosuid, nodev, noexec as containerd: inside a user namespace the runtime's read-only
    # remount must keep the flags the pod's tmpfs is locked with (else EPERM)
    opts.append(o.with_mounts([
        {"destination": DEV_SHM, "type": "bind", "source": shm_path,
         "options": ["rbind", "ro", "nosuid", "nodev", "noexec"]},
        {"destination": RESOLV_CONF, "type": "bind", "source": resolv_path, "options": ["rbind", "ro"]},
    ]))
    userstr = user_string("", _opt_field(sc, "run_as_user"), _opt_field(sc, "run_as_group")) or cfg.get("User") or ""
    opts += _user_opts(userstr, sc.supplemental_groups_policy, sc.supplemental_groups, default_groups=False)
    if config.linux.sysctls:
        opts.append(o.with_sysctls(dict(config.linux.sysctls)))
    cg = cgroups_path(config.linux.cgroup_parent, sb.id)
    if cg:
        opts.append(o.with_cgroup(cg))
    opts.append(o.with_cpu_shares(DEFAULT_SANDBOX_CPU_SHARES))
    opts.append(o.with_oom_score_adj(oom_score_adj))
    opts += seccomp_opts(_opt_field(sc, "seccomp"), sc.seccomp_profile_path, sc.privileged)
    opts.append(o.with_annotations({
        ANN_CONTAINER_TYPE: "sandbox", ANN_SANDBOX_ID: sb.id, ANN_SANDBOX_NAMESPACE: config.metadata.namespace,
        ANN_SANDBOX_UID: config.metadata.uid, ANN_SANDBOX_NAME: config.metadata.name,
        ANN_SANDBOX_LOG_DIR: config.log_directory,
    }))
    return opts


def extra_mounts(sb, config: cri.ContainerConfig, files: Mapping[str, str]) -> list[cri.Mount]:
    """The sandbox files a container gets unless its config mounts the path itself."""
    given = {posixpath.normpath(m.container_path) for m in config.mounts}
    ro = config.linux.security_context.readonly_rootfs
    out = []
    for dest in (ETC_HOSTNAME, ETC_HOSTS, RESOLV_CONF):
        src = files.get(dest, "")
        if src and dest not in given and os.path.exists(src):
            out.append(cri.Mount(container_path=dest, host_path=src, readonly=ro))
    if DEV_SHM not in given:
        src = DEV_SHM if sb.namespace_options.ipc == cri.NODE else files.get(DEV_SHM, "")
        if src:
            out.append(cri.Mount(container_path=DEV_SHM, host_path=src))
    return out


def container_spec_opts(c, sb, image_config: Mapping[str, Any], *, files: Mapping[str, str], sandbox_pid: int,
                        target_pid: int = 0, oom_score_adj: int, hostname: str, swap: bool, hugetlb: bool,
                        check_propagation=None, rro_supported: bool = False) -> list[o.SpecOpt]:
    """Options for container ``c`` in sandbox ``sb`` (see the module doc); ``rro_supported``:
    the runtime handler can make recursive read-only mounts."""
    from .util import cgroups_path

    config: cri.ContainerConfig = c.config
    cfg = image_section(image_config)
    sc = config.linux.security_context
    if sc.privileged and not sb.config.linux.security_context.privileged:
        raise InvalidArgument("no privileged container allowed in sandbox")
    env = o.replace_or_append_env(DEFAULT_UNIX_ENV, [f"HOSTNAME={hostname}"])
    env = o.replace_or_append_env(env, list(cfg.get("Env") or []))
    env = o.replace_or_append_env(env, [f"{kv.key}={kv.value}" for kv in config.envs])
    opts: list[o.SpecOpt] = [
        o.without_mounts("/run"),
        _without_default_security,
        _set_process(process_args(config.command, config.args, image_config), env,
                     config.working_dir or cfg.get("WorkingDir") or "/"),
        o.with_new_privileges,
    ]
    if config.tty:
        opts.append(o.with_tty)
    mounts = list(config.mounts) + extra_mounts(sb, config, files)
    opts.append(_with_cri_mounts(mounts, check_propagation, rro_supported))
    opts.append(o.with_masked_paths(list(sc.masked_paths)))
    opts.append(o.with_readonly_paths(list(sc.readonly_paths)))
    for d in config.devices:
        if not d.host_path:
            raise InvalidArgument("device has no host path")
        try:
            real = os.path.realpath(d.host_path)
            os.stat(real)
        except OSError as exc:
            raise InvalidArgument(f"device {quote(d.host_path)}: {exc.strerror}") from exc
        opts.append(o.with_devices(real, d.container_path or d.host_path, d.permissions or "rwm"))
    opts += capability_opts(_opt_field(sc, "capabilities"))
    if sc.privileged:
        opts += [o.with_privileged, o.with_host_devices]
    opts.append(_without_ambient)
    if sc.no_new_privs:
        opts.append(o.with_no_new_privileges)
    if sc.readonly_rootfs:
        opts.append(o.with_readonly_rootfs)
    opts += resources_opts(_opt_field(config.linux, "resources"), swap=swap, hugetlb=hugetlb)
    cg = cgroups_path(sb.config.linux.cgroup_parent, c.id)
    if cg:
        opts.append(o.with_cgroup(cg))
    opts.append(o.with_oom_score_adj(oom_score_adj))
    # namespaces of the pod
    proc = f"/proc/{sandbox_pid}/ns"
    opts += [o.with_linux_namespace("network", f"{proc}/net"), o.with_linux_namespace("ipc", f"{proc}/ipc"),
             o.with_linux_namespace("uts", f"{proc}/uts")]
    pid_mode = sc.namespace_options.pid
    if pid_mode == cri.POD:
        if sb.namespace_options.pid == cri.NODE:
            opts.append(_set_namespace("pid", None))
        else:
            opts.append(o.with_linux_namespace("pid", f"{proc}/pid"))
    elif pid_mode == cri.NODE:
        opts.append(_set_namespace("pid", None))
    elif pid_mode == cri.TARGET:
        if not target_pid:
            raise InvalidArgument(f"target container {quote(sc.namespace_options.target_id)} is not running")
        opts.append(o.with_linux_namespace("pid", f"/proc/{target_pid}/ns/pid"))
    sb_nso = sb.config.linux.security_context.namespace_options
    userns.check_same(sb_nso, sc.namespace_options)
    opts += userns.container_opts(userns.parse(sb_nso), sandbox_pid)
    if cgroup_mode() == CGROUP_UNIFIED and not sc.privileged:
        opts.append(o.with_linux_namespace("cgroup"))
    # user and groups (looked up in the image's rootfs)
    userstr = user_string(sc.run_as_username, _opt_field(sc, "run_as_user"), _opt_field(sc, "run_as_group"))
    if not userstr:
        userstr = cfg.get("User") or ""
    opts += _user_opts(userstr, sc.supplemental_groups_policy, sc.supplemental_groups, default_groups=True)
    opts += apparmor_opts(_opt_field(sc, "apparmor"), sc.apparmor_profile, sc.privileged)
    opts += seccomp_opts(_opt_field(sc, "seccomp"), sc.seccomp_profile_path, sc.privileged)
    opts.append(o.with_annotations({
        ANN_CONTAINER_TYPE: "container", ANN_SANDBOX_ID: sb.id,
        ANN_SANDBOX_NAMESPACE: sb.config.metadata.namespace, ANN_SANDBOX_UID: sb.config.metadata.uid,
        ANN_SANDBOX_NAME: sb.config.metadata.name, ANN_CONTAINER_NAME: config.metadata.name,
        ANN_IMAGE_NAME: config.image.image,
    }))
    return opts


def linux_resources(spec: Spec) -> dict[str, Any]:
    """The spec's ``linux.resources`` (for a task update)."""
    return dict(spec.get("linux", {}).get("resources") or {})


def resources_from_spec(spec: Spec) -> cri.LinuxContainerResources:
    """The CRI view of the spec's resources (for ContainerStatus)."""
    res = spec.get("linux", {}).get("resources") or {}
    cpu = res.get("cpu") or {}
    mem = res.get("memory") or {}
    out = cri.LinuxContainerResources(
        cpu_period=int(cpu.get("period", 0)), cpu_quota=int(cpu.get("quota", 0)), cpu_shares=int(cpu.get("shares", 0)),
        memory_limit_in_bytes=int(mem.get("limit", 0)), cpuset_cpus=cpu.get("cpus", ""), cpuset_mems=cpu.get("mems", ""),
        oom_score_adj=int(spec.get("process", {}).get("oomScoreAdj", 0)),
        memory_swap_limit_in_bytes=int(mem.get("swap", 0)))
    for h in res.get("hugepageLimits") or []:
        out.hugepage_limits.add(page_size=h.get("pageSize", ""), limit=int(h.get("limit", 0)))
    out.unified.update(res.get("unified") or {})
    return out
