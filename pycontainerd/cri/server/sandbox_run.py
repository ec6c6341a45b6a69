"""``RunPodSandbox``: a pause container from ``sandbox_image`` in new network, IPC and UTS
namespaces (the host's where ``namespace_options`` say NODE), with the pod's files.

Steps, each undone in reverse when a later one fails (nothing is left behind):

1. reserve the name ``<name>_<namespace>_<uid>_<attempt>`` (a duplicate is ALREADY_EXISTS
   naming the holder's id); check the runtime handler;
2. make sure the sandbox image is here (pulled through ``registry.config_path`` if not);
3. unless host network: create and pin a network namespace, CNI ADD (loopback + the
   configured networks), remember the IPs;
4. write ``hostname``, ``hosts`` and ``resolv.conf`` (from ``dns_config``, else the host's);
   mount a tmpfs for the pod's ``/dev/shm`` unless host IPC;
5. prepare the rootfs snapshot, generate the spec, store the container record (namespace
   ``k8s.io``, label ``io.cri-containerd.kind=sandbox``, metadata extension);
6. create and start the task; the sandbox is READY and its exit is watched.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
from collections.abc import Awaitable, Callable

from ...api.cri.runtime.v1 import api_pb2 as cri
from ...errdefs import FailedPrecondition, InvalidArgument
from ...log import get_logger
from ...records.containers import Container as ContainerRecord
from ...records.containers import Runtime
from ...mount import Mount, mount, unmount_all
from ...oci import opts as oci_opts
from ...oci import spec as oci_spec
from ...typeurl import AnyValue
from .. import netns
from ..backend import NAMESPACE, Backend
from ..cni import NetworkError
from ..spec import DEFAULT_SANDBOX_OOM_ADJ, sandbox_spec_opts
from ..state import SandboxState
from ..store import KIND_SANDBOX, SANDBOX_METADATA_EXT, SANDBOX_METADATA_URL, Sandbox
from ..util import cgroups_path, labels_for, new_id, now_ns, sandbox_name

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


def write_sandbox_files(c, sb: Sandbox) -> None:
    files = c.sandbox_files(sb)
    d = c.sandbox_root(sb.id)
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


async def run_pod_sandbox(c, req: cri.RunPodSandboxRequest) -> cri.RunPodSandboxResponse:
    await c.ensure_started()
    config = req.config
    validate_config(config)
    runtime_name, runtime = c.config.runtime(req.runtime_handler)
    if runtime.options.get("SystemdCgroup"):
        raise FailedPrecondition(f"runtime {runtime_name!r} sets SystemdCgroup: the systemd cgroup driver is not "
                                 "supported, use the cgroupfs driver")
    sid = new_id()
    name = sandbox_name(config.metadata)
    c.sandboxes.names.reserve("sandbox", name, sid)
    cfg = cri.PodSandboxConfig()
    cfg.CopyFrom(config)
    sb = Sandbox(id=sid, name=name, config=cfg, runtime_handler=req.runtime_handler, runtime_name=runtime_name,
                 created_at=now_ns(), image=c.config.sandbox_image)
    undo: list[Callable[[], Awaitable[None]]] = []
    try:
        image, _ = await c.ensure_image(c.config.sandbox_image)
        sb.image_id = image.id
        await c.ensure_unpacked(image)

        if not sb.host_network:
            ready, message = c.cni.status()
            if not ready:
                raise NetworkError(message)
            sb.netns_path = await netns.create_async()
            path = sb.netns_path
            log.debug("pod network namespace created", id=sid, netns=path)

            async def drop_netns() -> None:
                netns.remove(path)
            undo.append(drop_netns)

            async def teardown() -> None:
                await c.cni.teardown(sid, path)
            undo.append(teardown)
            meta = config.metadata
            result = await c.cni.setup(sid, sb.netns_path, pod_namespace=meta.namespace, pod_name=meta.name,
                                       pod_uid=meta.uid, port_mappings=list(config.port_mappings))
            sb.ip, sb.additional_ips, sb.cni_result = result.ip, result.additional_ips, result.results
            sb.network_ready = True

        async def drop_dirs() -> None:
            shm = os.path.join(c.sandbox_state(sid), "shm")
            with contextlib.suppress(OSError):
                unmount_all(shm)
            shutil.rmtree(c.sandbox_state(sid), ignore_errors=True)
            shutil.rmtree(c.sandbox_root(sid), ignore_errors=True)
        undo.append(drop_dirs)
        write_sandbox_files(c, sb)
        if sb.namespace_options.ipc != cri.NODE:
            shm = c.shm_path(sb)
            os.makedirs(shm, mode=0o700, exist_ok=True)
            mount(Mount("tmpfs", "shm", SHM_OPTIONS), shm)

        options = Backend.runtime_options(runtime.options)
        async with c.backend.lease():
            mounts = await c.backend.prepare(sid, image.chain_id)

            async def drop_snapshot() -> None:
                await c.backend.remove_snapshot(sid)
            undo.append(drop_snapshot)
            files = c.sandbox_files(sb)
            async with c.rootfs_view(mounts) as rootfs:
                spec = oci_opts.generate(NAMESPACE, sid, *sandbox_spec_opts(
                    sb, image.config, resolv_path=files["/etc/resolv.conf"], shm_path=files["/dev/shm"],
                    oom_score_adj=c.oom_score_adj(DEFAULT_SANDBOX_OOM_ADJ)), image_config=image.config, rootfs=rootfs)
            record = ContainerRecord(
                id=sid, runtime=Runtime(runtime.runtime_type,
                                        AnyValue(options.type_url, options.value) if options else None),
                spec=oci_spec.to_any(spec), image=image.record.name, labels=labels_for(KIND_SANDBOX, config.labels),
                snapshotter=c.backend.snapshotter, snapshot_key=sid,
                extensions={SANDBOX_METADATA_EXT: AnyValue(SANDBOX_METADATA_URL, json.dumps(sb.metadata()).encode())})
            await c.backend.create_container(record)

            async def drop_record() -> None:
                await c.backend.delete_container(sid)
            undo.append(drop_record)
        sb.spec = spec
        c.save(sb)
        pid = await c.backend.create_task(sid, mounts)

        async def drop_task() -> None:
            with contextlib.suppress(Exception):
                await c.backend.kill(sid, 9, all=True)
            with contextlib.suppress(Exception):
                await c.backend.wait(sid)
            await c.backend.delete_task(sid)
        undo.append(drop_task)
        await c.backend.start_task(sid)
        sb.pid = pid
        sb.set_state(SandboxState.READY)
        c.save(sb)
        c.sandboxes.add(sb)
        c.watch_sandbox(sb)
    except BaseException as exc:
        log.warning("run pod sandbox failed, undoing", id=sid, error=str(exc))
        for step in reversed(undo):
            try:
                await step()
            except Exception as err:  # keep undoing
                log.warning("undo step failed", id=sid, error=str(err))
        c.sandboxes.delete(sid)
        c.sandboxes.names.release(name, sid)
        raise
    c.publish(cri.CONTAINER_CREATED_EVENT, sb)
    c.publish(cri.CONTAINER_STARTED_EVENT, sb)
    log.info("pod sandbox ready", id=sid, name=name, ip=sb.ip or None)
    return cri.RunPodSandboxResponse(pod_sandbox_id=sid)
