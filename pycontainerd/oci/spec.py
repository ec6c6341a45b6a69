"""The default OCI runtime spec, as containerd 1.6 generates it (``oci.populateDefaultUnixSpec``).

A spec is a plain ``dict`` in the JSON shape of the OCI runtime-spec ``config.json``, with
Go's ``omitempty`` rules kept by the code that builds it: a field that containerd would leave
empty (``nil`` slice, empty string, ``false``) is *absent*, so :func:`marshal` gives the bytes
containerd would send, and a spec read back from a client round-trips unchanged.

containerd 1.6 vendors runtime-spec ``v1.0.3-0.20210326190908``, whose ``specs.Version`` is
``1.0.2-dev``: that is the ``ociVersion`` of every spec containerd 1.6 writes.

Cgroups: containerd's defaults are the same on cgroup v1 and v2 (``cgroupsPath`` is
``/<namespace>/<id>``, which runc's cgroupfs driver places under every v1 hierarchy or in the
unified tree alike). The one place containerd distinguishes them is the CRI, which gives a
non-privileged container its own cgroup namespace only on a unified (v2-only) host;
:func:`cgroup_mode` and :func:`pycontainerd.oci.opts.with_cgroup_namespace_if_unified`
provide that.
"""

from __future__ import annotations

import copy
import json
import posixpath
from typing import Any

from .. import identifiers
from ..errdefs import FailedPrecondition, InvalidArgument
from ..typeurl import OCI_SPEC_URL, AnyValue

Spec = dict[str, Any]
"""An OCI runtime spec in its JSON shape."""

OCI_VERSION = "1.0.2-dev"
DEFAULT_ROOTFS_PATH = "rootfs"
DEFAULT_UNIX_ENV = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",)
"""The environment containerd uses when an image config has none (``defaultUnixEnv``)."""

RWM = "rwm"

DEFAULT_UNIX_CAPS = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)
"""containerd's ``defaultUnixCaps``, in its order (bounding = permitted = effective)."""

KNOWN_CAPS = (
    # Numbered as the kernel numbers them: KNOWN_CAPS[n] is capability bit n (Linux 5.9).
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)  # fmt: skip
"""Every capability containerd knows (``pkg/cap.Known``)."""

MASKED_PATHS = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

NAMESPACE_TYPES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup")
"""The Linux namespace types of the runtime-spec."""
DEFAULT_NAMESPACES = ("pid", "ipc", "uts", "mount", "network")


def default_mounts() -> list[dict[str, Any]]:
    """containerd's ``defaultMounts`` (Linux), a fresh list."""

    def m(dest: str, typ: str, src: str, *opts: str) -> dict[str, Any]:
        return {"destination": dest, "type": typ, "source": src, "options": list(opts)}

    return [
        m("/proc", "proc", "proc", "nosuid", "noexec", "nodev"),
        m("/dev", "tmpfs", "tmpfs", "nosuid", "strictatime", "mode=755", "size=65536k"),
        m("/dev/pts", "devpts", "devpts",
          "nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"),
        m("/dev/shm", "tmpfs", "shm", "nosuid", "noexec", "nodev", "mode=1777", "size=65536k"),
        m("/dev/mqueue", "mqueue", "mqueue", "nosuid", "noexec", "nodev"),
        m("/sys", "sysfs", "sysfs", "nosuid", "noexec", "nodev", "ro"),
        m("/run", "tmpfs", "tmpfs", "nosuid", "strictatime", "mode=755", "size=65536k"),
    ]  # fmt: skip


def default_spec(namespace: str, container_id: str) -> Spec:
    """The spec containerd generates before any option is applied.

    No ``process.args`` and no ``process.env``: those come from options (the image config,
    :func:`~pycontainerd.oci.opts.with_process_args`, …).

    Raises:
        FailedPrecondition: ``namespace`` is empty (containerd: ``namespace is required``).
        InvalidArgument: ``namespace`` or ``container_id`` is not a valid identifier.
    """
    if not namespace:
        raise FailedPrecondition("namespace is required")
    try:
        identifiers.validate(namespace)
    except InvalidArgument as exc:
        raise InvalidArgument(f"namespace validation: {exc.context}") from exc
    try:
        identifiers.validate(container_id)
    except InvalidArgument as exc:
        raise InvalidArgument(f"container id: {exc.context}") from exc
    return {
        "ociVersion": OCI_VERSION,
        "process": {
            "user": {"uid": 0, "gid": 0},
            "cwd": "/",
            "capabilities": {
                "bounding": list(DEFAULT_UNIX_CAPS),
                "effective": list(DEFAULT_UNIX_CAPS),
                "permitted": list(DEFAULT_UNIX_CAPS),
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": DEFAULT_ROOTFS_PATH},
        "mounts": default_mounts(),
        "linux": {
            "resources": {"devices": [{"allow": False, "access": RWM}]},
            "cgroupsPath": posixpath.join("/", namespace, container_id),
            "namespaces": [{"type": t} for t in DEFAULT_NAMESPACES],
            "maskedPaths": list(MASKED_PATHS),
            "readonlyPaths": list(READONLY_PATHS),
        },
    }


def clone(spec: Spec) -> Spec:
    """A deep copy of ``spec``."""
    return copy.deepcopy(spec)


def marshal(spec: Spec) -> bytes:
    """The spec as compact JSON bytes (what containerd stores in ``Container.Spec``)."""
    return json.dumps(spec, separators=(",", ":")).encode()


def to_any(spec: Spec) -> AnyValue:
    """The spec as the ``Any`` containerd attaches to a container record."""
    return AnyValue(OCI_SPEC_URL, marshal(spec))


def from_any(value: AnyValue) -> Spec:
    """Decode a container's spec. Raises :class:`InvalidArgument` on bad JSON."""
    try:
        spec = json.loads(value.value)
    except ValueError as exc:
        raise InvalidArgument(f"decoding spec failed, supported OCI runtime-spec: v{OCI_VERSION}") from exc
    if not isinstance(spec, dict):
        raise InvalidArgument("spec must be a JSON object")
    return spec


# --- cgroups -----------------------------------------------------------------------------

CGROUP_LEGACY = "legacy"
CGROUP_HYBRID = "hybrid"
CGROUP_UNIFIED = "unified"
CGROUP_UNAVAILABLE = "unavailable"


def cgroup_mode(mountinfo: str = "/proc/self/mountinfo") -> str:
    """How cgroups are mounted here, with the names of containerd/cgroups ``Mode()``.

    ``unified``: cgroup2 at ``/sys/fs/cgroup``; ``hybrid``: v1 hierarchies plus cgroup2 at
    ``/sys/fs/cgroup/unified``; ``legacy``: v1 only; ``unavailable``: none of these.
    """
    types: dict[str, str] = {}
    try:
        with open(mountinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.split()
                try:
                    sep = fields.index("-")
                except ValueError:
                    continue
                if len(fields) > sep + 1:
                    types[fields[4]] = fields[sep + 1]
    except OSError:
        return CGROUP_UNAVAILABLE
    if types.get("/sys/fs/cgroup") == "cgroup2":
        return CGROUP_UNIFIED
    if types.get("/sys/fs/cgroup/unified") == "cgroup2":
        return CGROUP_HYBRID
    if any(t == "cgroup" and p.startswith("/sys/fs/cgroup/") for p, t in types.items()):
        return CGROUP_LEGACY
    return CGROUP_UNAVAILABLE
