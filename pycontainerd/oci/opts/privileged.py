"""The privileged container, composed of the other options."""

from __future__ import annotations

from ..spec import Spec
from .base import SpecContext, _Flag, compose
from .capabilities import with_all_current_capabilities
from .devices import with_all_devices_allowed
from .linux import with_seccomp_unconfined
from .mounts import with_masked_paths, with_readonly_paths, with_writeable_cgroupfs, with_writeable_sysfs
from .process import with_apparmor_profile, with_selinux_label


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
