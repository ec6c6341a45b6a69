"""Pod user namespaces (``NamespaceOption.userns_options``), as containerd's CRI has them.

- mode NODE (or no options): the host's user namespace, no mappings allowed;
- mode POD: one uid and one gid mapping line (containerd's remapped snapshots take one
  line only), container id 0 mapped. The pause container gets a new user namespace with
  those maps and a new network namespace *owned by it*, made by the runtime (a namespace
  made by the daemon would belong to the host's user namespace: the container's root could
  not mount ``sysfs`` in it nor configure it); the daemon pins ``/proc/<pid>/ns/net``
  after the task is created and runs CNI in it before the task starts. Every container
  of the pod joins the pause's user namespace (``/proc/<pid>/ns/user``) with the same maps,
  which must equal the pod's;
- its rootfs snapshots (pause's and the containers') carry containerd 2's
  ``containerd.io/snapshot/uidmapping`` / ``gidmapping`` labels, so the overlay snapshotter
  id-maps the image layers for the container's root instead of copying them;
- CONTAINER and TARGET are refused.

Errors are containerd's plain ones (gRPC UNKNOWN), worded as containerd words them.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..api.cri.runtime.v1 import api_pb2 as cri
from ..errdefs import Unknown
from ..oci import opts as o
from ..snapshots.types import LABEL_GID_MAPPING, LABEL_UID_MAPPING

IDMap = dict[str, int]


def _parse_map(what: str, lines) -> list[IDMap]:
    if not lines:
        return []
    if len(lines) > 1:
        raise Unknown(f"user namespace configuration: {what} mapping: only one mapping line supported, "
                      f"got {len(lines)} mapping lines")
    m = lines[0]
    if m.length < 1:
        raise Unknown(f"user namespace configuration: {what} mapping: invalid mapping length: {m.length}")
    if m.host_id + m.length > 1 << 32 or m.container_id + m.length > 1 << 32:
        raise Unknown(f"user namespace configuration: {what} mapping: mapping "
                      f"{m.container_id}:{m.host_id}:{m.length} goes past the largest id (4294967295)")
    if not m.container_id <= 0 < m.container_id + m.length:
        raise Unknown(f"user namespace configuration: {what} mapping: container ID 0 is not mapped "
                      f"(mapping {m.container_id}:{m.host_id}:{m.length}); the pod's root would own nothing")
    return [{"containerID": m.container_id, "hostID": m.host_id, "size": m.length}]


def parse(options: cri.NamespaceOption) -> tuple[list[IDMap], list[IDMap]] | None:
    """``(uid maps, gid maps)`` for a pod with its own user namespace; None for the host's.
    Raises :class:`Unknown` for a configuration containerd refuses."""
    if not options.HasField("userns_options"):
        return None
    userns = options.userns_options
    uids, gids = _parse_map("UID", userns.uids), _parse_map("GID", userns.gids)
    mode = cri.NamespaceMode.Name(userns.mode)
    if userns.mode == cri.NODE:
        if uids or gids:
            raise Unknown(f"user namespace configuration: can't use user namespace mode {mode!r} with mappings. "
                          f"Got {len(uids)} UID mappings and {len(gids)} GID mappings")
        return None
    if userns.mode == cri.POD:
        if not uids or not gids:
            raise Unknown(f"user namespace configuration: can't use user namespace mode {mode!r} without UID "
                          "and GID mappings")
        return uids, gids
    raise Unknown(f"user namespace configuration: unsupported user namespace mode: {mode!r}")


def check_host_network(options: cri.NamespaceOption, maps) -> None:
    """A pod user namespace with the host's network is refused (``RuntimeFeatures`` says
    ``user_namespaces_host_network: false``)."""
    if maps is not None and options.network == cri.NODE:
        raise Unknown("user namespace configuration: a pod user namespace with the host network is not "
                      "supported by this runtime (user_namespaces_host_network is false)")


def check_same(sandbox: cri.NamespaceOption, container: cri.NamespaceOption) -> None:
    """containerd's ``sameUsernsConfig``: a container's user namespace options are its pod's
    (none and mode NODE without mappings both mean the host's)."""
    if _key(sandbox) != _key(container):
        raise Unknown("user namespace config for sandbox is different from container. Sandbox userns config: "
                      f"{_text(sandbox)} - Container userns config: {_text(container)}")


def _key(options: cri.NamespaceOption) -> bytes | None:
    u = options.userns_options
    if not options.HasField("userns_options") or (u.mode == cri.NODE and not u.uids and not u.gids):
        return None
    return u.SerializeToString(deterministic=True)


def _text(options: cri.NamespaceOption) -> str:
    if not options.HasField("userns_options"):
        return "<nil>"
    return "{" + " ".join(str(options.userns_options).split()) + "}"


def snapshot_labels(maps) -> Mapping[str, str]:
    """The labels of a rootfs snapshot remapped for ``maps`` (none for the host's namespace)."""
    if maps is None:
        return {}
    uids, gids = maps

    def text(lines: list[IDMap]) -> str:
        return " ".join(f"{m['containerID']}:{m['hostID']}:{m['size']}" for m in lines)

    return {LABEL_UID_MAPPING: text(uids), LABEL_GID_MAPPING: text(gids)}


def sandbox_opts(maps) -> list[o.SpecOpt]:
    """A new user namespace with the pod's maps and a new network namespace (made by the runtime)."""
    if maps is None:
        return []
    return [o.with_linux_namespace("network"), o.with_user_namespace(*maps)]


def container_opts(maps, sandbox_pid: int) -> list[o.SpecOpt]:
    """Join the pause container's user namespace, with the pod's maps."""
    if maps is None:
        return []
    return [o.with_linux_namespace("user", f"/proc/{sandbox_pid}/ns/user"), o.with_user_namespace(*maps)]
