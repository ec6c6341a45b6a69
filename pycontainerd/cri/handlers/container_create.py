"""``CreateContainer``: a container record (and its rootfs snapshot) in a READY sandbox;
nothing runs until ``StartContainer``.

Checks, each a clear status with nothing left behind: the sandbox exists (NOT_FOUND) and
is ready (FAILED_PRECONDITION); the config has metadata (INVALID_ARGUMENT); the name
``<name>_<pod>_<namespace>_<uid>_<attempt>`` is free (ALREADY_EXISTS naming the holder);
the image is here (NOT_FOUND: the kubelet pulls first), and each image volume's image
(see :mod:`..image_volume`: read-only only, its sub path must exist); every mount source exists, the
seccomp profile loads, the user exists in the image (INVALID_ARGUMENT).
"""

from __future__ import annotations

import contextlib
import json
import posixpath
import shutil

from ...api.cri.runtime.v1 import api_pb2 as cri
from ...errdefs import InvalidArgument, NotFound, quote
from ...log import get_logger
from ...records.containers import Container as ContainerRecord
from ...records.containers import Runtime
from ...oci import opts as oci_opts
from ...oci import spec as oci_spec
from ...typeurl import AnyValue
from .. import image_volume, userns
from ..daemon import NAMESPACE, runtime_options
from ..features import supports_rro
from ..service import CRIService
from ..spec import container_spec_opts, resources_from_spec
from ..state import ContainerState, SandboxOp, check_sandbox_op
from ..store import (
    CONTAINER_METADATA_EXT,
    CONTAINER_METADATA_URL,
    KIND_CONTAINER,
    Container,
    Sandbox,
)
from ..util import (
    container_name,
    cri_signal_name,
    hugetlb_controller_available,
    labels_for,
    new_id,
    now_ns,
    swap_controller_available,
    creating,
    undo_on_failure,
)

log = get_logger("cri")


def log_path(sandbox_config: cri.PodSandboxConfig, config: cri.ContainerConfig) -> str:
    """``<log_directory>/<log_path>``; no log when the container gives no log path."""
    if not config.log_path:
        return ""
    path = posixpath.join(sandbox_config.log_directory, config.log_path)
    if "\0" in path:
        raise InvalidArgument(f"log path {quote(path)} contains a NUL byte")
    return path


async def create_container(svc: CRIService, req: cri.CreateContainerRequest) -> cri.CreateContainerResponse:
    sb = svc.sandboxes.find(req.pod_sandbox_id)
    if sb is None:
        raise NotFound(f"failed to find sandbox id {quote(req.pod_sandbox_id)}")
    config = req.config
    if not config.HasField("metadata") or not config.metadata.name:
        raise InvalidArgument("container config must include metadata with a name")
    check_sandbox_op(SandboxOp.CREATE_CONTAINER, sb.id, sb.state)
    cid = new_id()
    name = container_name(config.metadata, sb.config.metadata)
    svc.containers.names.reserve("container", name, cid)
    async with creating(svc.containers, name, cid) as undo:
        ct = await _create(svc, sb, cid, name, config, undo)
    svc.publish(cri.CONTAINER_CREATED_EVENT, ct)
    return cri.CreateContainerResponse(container_id=cid)


async def _create(svc: CRIService, sb: Sandbox, cid: str, name: str, config: cri.ContainerConfig,
                  undo: contextlib.AsyncExitStack) -> Container:
    """Everything after the checks; each step pushes its undo on ``undo``."""
    if not config.image.image:
        raise InvalidArgument("container config must name an image")
    found = await svc.images.local_image(config.image.image)
    if found is None:
        raise NotFound(f"failed to resolve image {quote(config.image.image)}: not found")
    image, names = found
    tags, digests = svc.images.split_references(names)
    cfg = cri.ContainerConfig()
    cfg.CopyFrom(config)
    image_cfg = image.config.get("config") or {}
    stop = cri_signal_name(config.stop_signal) or image_cfg.get("StopSignal") or "SIGTERM"
    ct = Container(id=cid, name=name, sandbox_id=sb.id, config=cfg, created_at=now_ns(),
                   image_ref=config.image.image, image_id=image.id, image_repo_tag=tags[0] if tags else "",
                   image_repo_digest=digests[0] if digests else "", log_path=log_path(sb.config, config),
                   runtime_name=sb.runtime_name, stop_signal=stop)
    await svc.images.ensure_unpacked(image)
    _, runtime = svc.config.runtime(sb.runtime_name)
    options = runtime_options(runtime.options)
    target_pid = 0
    if config.linux.security_context.namespace_options.pid == cri.TARGET:
        target = svc.containers.find(config.linux.security_context.namespace_options.target_id)
        target_pid = target.pid if target is not None else 0
    async with svc.daemon.lease():
        mounts = await svc.daemon.prepare(
            cid, image.chain_id, userns.snapshot_labels(userns.parse(sb.config.linux.security_context.namespace_options)))
        undo_on_failure(undo, svc.daemon.remove_snapshot, cid, obj_id=cid)
        gc_labels = await image_volume.prepare(svc, cid, cfg.mounts)
        undo_on_failure(undo, image_volume.release, svc, cid, cfg.mounts, obj_id=cid)
        opts = container_spec_opts(
            ct, sb, image.config, files=svc.sandbox_files(sb), sandbox_pid=sb.pid, target_pid=target_pid,
            oom_score_adj=svc.oom_score_adj(int(config.linux.resources.oom_score_adj)),
            hostname=sb.config.hostname or _host_hostname(), swap=swap_controller_available(),
            hugetlb=hugetlb_controller_available(),
            rro_supported=any(m.recursive_read_only for m in config.mounts)
            and await supports_rro(svc.config, sb.runtime_name))
        async with svc.rootfs_view(mounts) as rootfs:
            spec = oci_opts.generate(NAMESPACE, cid, *opts, image_config=image.config, rootfs=rootfs)
        ct.spec = spec
        ct.resources = resources_from_spec(spec)
        user = spec.get("process", {}).get("user", {})
        ct.user = {"uid": user.get("uid", 0), "gid": user.get("gid", 0),
                   "additional_gids": list(user.get("additionalGids") or [])}
        record = ContainerRecord(
            id=cid, runtime=Runtime(runtime.runtime_type,
                                    AnyValue(options.type_url, options.value) if options else None),
            spec=oci_spec.to_any(spec), image=image.record.name,
            labels=labels_for(KIND_CONTAINER, image_cfg.get("Labels") or {}, config.labels, gc_labels),
            snapshotter=svc.daemon.snapshotter, snapshot_key=cid,
            extensions={CONTAINER_METADATA_EXT: AnyValue(CONTAINER_METADATA_URL,
                                                         json.dumps(ct.metadata()).encode())})
        await svc.daemon.create_container(record, last_in_lease=True)
        undo_on_failure(undo, svc.daemon.delete_container, cid, obj_id=cid)
    undo_on_failure(undo, shutil.rmtree, svc.container_root(cid), True, obj_id=cid)
    undo_on_failure(undo, shutil.rmtree, svc.container_state(cid), True, obj_id=cid)
    ct.state = ContainerState.CREATED
    svc.save(ct)
    svc.containers.add(ct)
    return ct


def _host_hostname() -> str:
    import socket

    return socket.gethostname()


__all__ = ["create_container", "log_path"]
