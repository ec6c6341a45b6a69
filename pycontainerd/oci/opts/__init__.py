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

This package is the API (``from pycontainerd.oci import opts``); its modules hold the
options by the part of the spec they edit: :mod:`.base` (context, :func:`generate`,
helpers), :mod:`.process` (process and image config), :mod:`.users`, :mod:`.mounts`,
:mod:`.resources`, :mod:`.capabilities`, :mod:`.namespaces`, :mod:`.linux` (annotations,
sysctls, seccomp), :mod:`.devices`, :mod:`.privileged`.
"""

from __future__ import annotations

from .base import (
    DEFAULT_CPU_PERIOD,
    MAX_ID,
    OOM_SCORE_ADJ_MAX,
    OOM_SCORE_ADJ_MIN,
    RLIMIT_TYPES,
    SpecContext,
    SpecOpt,
    apply,
    compose,
    generate,
)
from .process import (
    replace_or_append_env,
    with_apparmor_profile,
    with_default_path_env,
    with_env,
    with_hostname,
    with_image_config,
    with_image_config_args,
    with_new_privileges,
    with_no_new_privileges,
    with_oom_score_adj,
    with_process_args,
    with_process_cwd,
    with_rlimits,
    with_selinux_label,
    with_tty,
    with_tty_size,
)
from .users import (
    with_additional_gids,
    with_append_additional_groups,
    with_uid_gid,
    with_user,
    with_user_id,
    with_username,
)
from .mounts import (
    with_masked_paths,
    with_mounts,
    with_readonly_paths,
    with_readonly_rootfs,
    with_rootfs_path,
    with_writeable_cgroupfs,
    with_writeable_sysfs,
    without_mounts,
)
from .resources import (
    with_cgroup,
    with_cpu_cfs,
    with_cpu_shares,
    with_cpus,
    with_cpuset_cpus,
    with_cpuset_mems,
    with_memory_limit,
    with_memory_swap,
    with_namespaced_cgroup,
    with_pids_limit,
)
from .capabilities import (
    current_capabilities,
    with_added_capabilities,
    with_all_current_capabilities,
    with_all_known_capabilities,
    with_ambient_capabilities,
    with_capabilities,
    with_dropped_capabilities,
)
from .namespaces import (
    with_cgroup_namespace_if_unified,
    with_host_namespace,
    with_linux_namespace,
    with_user_namespace,
)
from .linux import (
    with_annotations,
    with_seccomp,
    with_seccomp_unconfined,
    with_sysctls,
)
from .devices import (
    device_from_path,
    host_devices,
    with_all_devices_allowed,
    with_default_unix_devices,
    with_dev_shm_size,
    with_devices,
    with_host_devices,
    with_linux_devices,
    with_parent_cgroup_devices,
)
from .privileged import (
    with_privileged,
)

__all__ = [
    "DEFAULT_CPU_PERIOD",
    "MAX_ID",
    "OOM_SCORE_ADJ_MAX",
    "OOM_SCORE_ADJ_MIN",
    "RLIMIT_TYPES",
    "SpecContext",
    "SpecOpt",
    "apply",
    "compose",
    "current_capabilities",
    "device_from_path",
    "generate",
    "host_devices",
    "replace_or_append_env",
    "with_added_capabilities",
    "with_additional_gids",
    "with_all_current_capabilities",
    "with_all_devices_allowed",
    "with_all_known_capabilities",
    "with_ambient_capabilities",
    "with_annotations",
    "with_apparmor_profile",
    "with_append_additional_groups",
    "with_capabilities",
    "with_cgroup",
    "with_cgroup_namespace_if_unified",
    "with_cpu_cfs",
    "with_cpu_shares",
    "with_cpus",
    "with_cpuset_cpus",
    "with_cpuset_mems",
    "with_default_path_env",
    "with_default_unix_devices",
    "with_dev_shm_size",
    "with_devices",
    "with_dropped_capabilities",
    "with_env",
    "with_host_devices",
    "with_host_namespace",
    "with_hostname",
    "with_image_config",
    "with_image_config_args",
    "with_linux_devices",
    "with_linux_namespace",
    "with_masked_paths",
    "with_memory_limit",
    "with_memory_swap",
    "with_mounts",
    "with_namespaced_cgroup",
    "with_new_privileges",
    "with_no_new_privileges",
    "with_oom_score_adj",
    "with_parent_cgroup_devices",
    "with_pids_limit",
    "with_privileged",
    "with_process_args",
    "with_process_cwd",
    "with_readonly_paths",
    "with_readonly_rootfs",
    "with_rlimits",
    "with_rootfs_path",
    "with_seccomp",
    "with_seccomp_unconfined",
    "with_selinux_label",
    "with_sysctls",
    "with_tty",
    "with_tty_size",
    "with_uid_gid",
    "with_user",
    "with_user_id",
    "with_user_namespace",
    "with_username",
    "with_writeable_cgroupfs",
    "with_writeable_sysfs",
    "without_mounts",
]
