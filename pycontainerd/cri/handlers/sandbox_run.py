"""``RunPodSandbox``: a pause container from ``sandbox_image`` in new network, IPC and UTS
namespaces (the host's where ``namespace_options`` say NODE), with the pod's files.

Steps, each undone in reverse when a later one fails (nothing is left behind; the undo
steps go on a :class:`contextlib.AsyncExitStack`):

1. reserve the name ``<name>_<namespace>_<uid>_<attempt>`` (a duplicate is ALREADY_EXISTS
   naming the holder's id); check the runtime handler;
2. make sure the sandbox image is here (pulled through ``registry.config_path`` if not);
3. unless host network: create and pin a network namespace, CNI ADD (loopback + the
   configured networks), remember the IPs (a pod with its own user namespace: after step 6's
   create, in the namespace the runtime made, see :mod:`..userns`);
4. write ``hostname``, ``hosts`` and ``resolv.conf`` (from ``dns_config``, else the host's);
   mount a tmpfs for the pod's ``/dev/shm`` unless host IPC;
5. prepare the rootfs snapshot, generate the spec, store the container record (namespace
   ``k8s.io``, label ``io.cri-containerd.kind=sandbox``, metadata extension);
6. create and start the task; the sandbox is READY and its exit is watched.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import socket

from ...api.cri.runtime.v1 import api_pb2 as cri
from ...errdefs import FailedPrecondition, InvalidArgument
from ...log import get_logger
from ...records.containers import Container as ContainerRecord
from ...records.containers import Runtime
from ...mount import Mount, mount, unmount_all
from ...oci import opts as oci_opts
from ...oci import spec as oci_spec
from ...typeurl import AnyValue
from .. import netns, userns
from ..daemon import NAMESPACE, runtime_options
from ..cni import NetworkError
from ..service import CRIService
from ..spec import DEFAULT_SANDBOX_OOM_ADJ, sandbox_spec_opts
from ..state import SandboxState
from ..store import KIND_SANDBOX, SANDBOX_METADATA_EXT, SANDBOX_METADATA_URL, Sandbox
from ..util import cgroups_path, creating, labels_for, new_id, now_ns, sandbox_name, undo_on_failure

log = get_logger("cri")

SHM_OPTIONS = ("nodev", "nosuid", "noexec", "mode=1777", "size=65536k")
DEFAULT_HOSTS = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "fe00::0\tip6-mcastprefix\n"
    "fe00::1\tip6-allnodes\n"
    "fe00::2\tip6-allrouters\n"
)


def resolv_conf(dns: cri.DNSConfig) -> str:
    """containerd's ``parseDNSOptions``: ``search``, ``nameserver`` lines, ``options``."""
    out = ""
    if dns.searches:
        out += f"search {' '.join(dns.searches)}\n"
    if dns.servers:
        out += "".join(f"nameserver {s}\n" for s in dns.servers)
    if dns.options:
        out += f"options {' '.join(dns.options)}\n"
    return out


def hosts_file(host_network: bool, hostname: str, ips: list[str]) -> str:
    """The host's ``/etc/hosts`` for a host-network pod; else localhost entries plus the
    pod's addresses for its hostname."""
    if host_network:
        try:
            with open("/etc/hosts") as f:
                return f.read()
        except OSError:
            return DEFAULT_HOSTS
    out = DEFAULT_HOSTS
    for ip in ips:
        if ip and hostname:
            out += f"{ip}\t{hostname}\n"
    return out


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o644)


def write_sandbox_files(svc: CRIService, sb: Sandbox) -> None:
    files = svc.sandbox_files(sb)
    d = svc.sandbox_root(sb.id)
    os.makedirs(d, mode=0o755, exist_ok=True)
    hostname = sb.config.hostname or socket.gethostname()
    _write(files["/etc/hostname"], hostname + "\n")
    _write(files["/etc/hosts"], hosts_file(sb.host_network, hostname, [sb.ip, *sb.additional_ips]))
    if sb.config.HasField("dns_config"):
        _write(files["/etc/resolv.conf"], resolv_conf(sb.config.dns_config))
    else:
        try:
            shutil.copyfile("/etc/resolv.conf", files["/etc/resolv.conf"])
            os.chmod(files["/etc/resolv.conf"], 0o644)
        except OSError:
            _write(files["/etc/resolv.conf"], "")


def validate_config(config: cri.PodSandboxConfig) -> None:
    if not config.HasField("metadata"):
        raise InvalidArgument("sandbox config must include metadata")
    if not config.metadata.name:
        raise InvalidArgument("sandbox config metadata must have a name")
    nso = config.linux.security_context.namespace_options
    if nso.network not in (cri.POD, cri.NODE):
        raise InvalidArgument("sandbox network namespace must be POD or NODE")
    cgroups_path(config.linux.cgroup_parent, "x")  # a systemd slice is refused here
    userns.check_host_network(nso, userns.parse(nso))


async def run_pod_sandbox(svc: CRIService, req: cri.RunPodSandboxRequest) -> cri.RunPodSandboxResponse:
    config = req.config
    validate_config(config)
    runtime_name, runtime = svc.config.runtime(req.runtime_handler)
    if runtime.options.get("SystemdCgroup"):
        raise FailedPrecondition(f"runtime {runtime_name!r} sets SystemdCgroup: the systemd cgroup driver is not "
                                 "supported, use the cgroupfs driver")
    sid = new_id()
    name = sandbox_name(config.metadata)
    svc.sandboxes.names.reserve("sandbox", name, sid)
    cfg = cri.PodSandboxConfig()
    cfg.CopyFrom(config)
    sb = Sandbox(id=sid, name=name, config=cfg, runtime_handler=req.runtime_handler, runtime_name=runtime_name,
                 created_at=now_ns(), image=svc.config.sandbox_image)
    async with creating(svc.sandboxes, name, sid) as undo:
        await _run(svc, sb, runtime, undo)
    svc.publish(cri.CONTAINER_CREATED_EVENT, sb)
    svc.publish(cri.CONTAINER_STARTED_EVENT, sb)
    log.info("pod sandbox ready", id=sid, name=name, ip=sb.ip or None)
    return cri.RunPodSandboxResponse(pod_sandbox_id=sid)


async def _run(svc: CRIService, sb: Sandbox, runtime, undo: contextlib.AsyncExitStack) -> None:
    """Steps 2–6 of the module doc; each pushes its undo on ``undo``."""
    sid, config = sb.id, sb.config
    image, _ = await svc.images.ensure_image(svc.config.sandbox_image)
    sb.image_id = image.id
    await svc.images.ensure_unpacked(image)

    maps = userns.parse(sb.namespace_options)
    if not sb.host_network:
        ready, message = svc.cni.status()
        if not ready:
            raise NetworkError(message)
        if maps is None:  # with a pod user namespace the runtime makes it (see .userns)
            await _setup_network(svc, sb, await netns.create_async(), undo)

    undo_on_failure(undo, _drop_dirs, svc, sid, obj_id=sid)
    write_sandbox_files(svc, sb)
    if sb.namespace_options.ipc != cri.NODE:
        shm = svc.shm_path(sb)
        os.makedirs(shm, mode=0o700, exist_ok=True)
        mount(Mount("tmpfs", "shm", SHM_OPTIONS), shm)

    options = runtime_options(runtime.options)
    async with svc.daemon.lease():
        mounts = await svc.daemon.prepare(sid, image.chain_id, userns.snapshot_labels(maps))
        undo_on_failure(undo, svc.daemon.remove_snapshot, sid, obj_id=sid)
        files = svc.sandbox_files(sb)
        async with svc.rootfs_view(mounts) as rootfs:
            spec = oci_opts.generate(NAMESPACE, sid, *sandbox_spec_opts(
                sb, image.config, resolv_path=files["/etc/resolv.conf"], shm_path=files["/dev/shm"],
                oom_score_adj=svc.oom_score_adj(DEFAULT_SANDBOX_OOM_ADJ)), image_config=image.config, rootfs=rootfs)
        record = ContainerRecord(
            id=sid, runtime=Runtime(runtime.runtime_type,
                                    AnyValue(options.type_url, options.value) if options else None),
            spec=oci_spec.to_any(spec), image=image.record.name, labels=labels_for(KIND_SANDBOX, config.labels),
            snapshotter=svc.daemon.snapshotter, snapshot_key=sid,
            extensions=_metadata_ext(sb))
        await svc.daemon.create_container(record, last_in_lease=True)
        undo_on_failure(undo, svc.daemon.delete_container, sid, obj_id=sid)
    sb.spec = spec
    svc.save(sb)
    pid = await svc.daemon.create_task(sid, mounts)
    undo_on_failure(undo, _drop_task, svc, sid, obj_id=sid)
    if maps is not None and not sb.host_network:
        await _setup_network(svc, sb, await netns.pin_async(pid), undo)
        write_sandbox_files(svc, sb)  # /etc/hosts names the pod's address
        await svc.daemon.update_container(dataclasses.replace(record, extensions=_metadata_ext(sb)),
                                          f"extensions.{SANDBOX_METADATA_EXT}")
    await svc.daemon.start_task(sid)
    sb.pid = pid
    sb.set_state(SandboxState.READY)
    svc.save(sb)
    svc.sandboxes.add(sb)
    svc.exits.watch(sb)


def _metadata_ext(sb: Sandbox) -> dict[str, AnyValue]:
    return {SANDBOX_METADATA_EXT: AnyValue(SANDBOX_METADATA_URL, json.dumps(sb.metadata()).encode())}


async def _setup_network(svc: CRIService, sb: Sandbox, path: str, undo: contextlib.AsyncExitStack) -> None:
    """CNI ADD in the pod's pinned network namespace ``path`` (undone on failure)."""
    sb.netns_path = path
    log.debug("pod network namespace pinned", id=sb.id, netns=path)
    undo_on_failure(undo, netns.remove, path, obj_id=sb.id)
    undo_on_failure(undo, svc.cni.teardown, sb.id, path, obj_id=sb.id)
    config = sb.config
    meta = config.metadata
    result = await svc.cni.setup(sb.id, path, pod_namespace=meta.namespace, pod_name=meta.name,
                                 pod_uid=meta.uid, port_mappings=list(config.port_mappings))
    sb.ip, sb.additional_ips, sb.cni_result = result.ip, result.additional_ips, result.results
    sb.network_ready = True


def _drop_dirs(svc: CRIService, sid: str) -> None:
    with contextlib.suppress(OSError):
        unmount_all(os.path.join(svc.sandbox_state(sid), "shm"))
    shutil.rmtree(svc.sandbox_state(sid), ignore_errors=True)
    shutil.rmtree(svc.sandbox_root(sid), ignore_errors=True)


async def _drop_task(svc: CRIService, sid: str) -> None:
    with contextlib.suppress(Exception):
        await svc.daemon.kill(sid, 9, all=True)
    with contextlib.suppress(Exception):
        await svc.daemon.wait(sid)
    await svc.daemon.delete_task(sid)
