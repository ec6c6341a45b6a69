"""The generated containerd API bindings: in step with api/, importable, and wire-exact.

The wire facts below are what existing containerd clients (Debian's ctr 1.6.20, the Go client)
depend on; they are checked through the protobuf descriptors, so a wrong number or name in a
.proto file fails here rather than silently on the wire.
"""

from __future__ import annotations

import gc
import importlib
from pathlib import Path

import pytest
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import FieldDescriptor

from pycontainerd.api import generate

API_OUT = Path(generate.__file__).resolve().parent


def _generated_modules() -> list[str]:
    mods = []
    for path in sorted(API_OUT.rglob("*.py")):
        if path.name in {"__init__.py", "generate.py"} or "__pycache__" in path.parts:
            continue
        rel = path.relative_to(API_OUT.parent.parent).with_suffix("")
        mods.append(".".join(rel.parts))
    return mods


@pytest.fixture(scope="module")
def pool() -> descriptor_pool.DescriptorPool:
    for mod in _generated_modules():
        importlib.import_module(mod)
    return descriptor_pool.Default()


def test_generated_tree_has_not_drifted() -> None:
    drift = generate.check()
    assert drift == [], "run `python -m pycontainerd.api.generate`:\n" + "\n".join(drift)


def test_every_proto_has_a_module_and_every_module_imports() -> None:
    mods = set(_generated_modules())
    for proto in generate.proto_files():
        mod = "pycontainerd.api." + proto[: -len(".proto")].replace("/", ".") + "_pb2"
        assert mod in mods, f"no generated module for {proto}"
    # CPython 3.11.2 (Debian 12) raises "SystemError: AST constructor recursion depth
    # mismatch" when a finalizer runs inside ast.parse (pytest rewrites these modules, our
    # pytest11 plugin marks the package); seen once with a leaked asyncio task collected
    # mid-parse. Collect first and keep the collector out of the imports.
    gc.collect()
    gc.disable()
    try:
        for mod in sorted(mods):
            importlib.import_module(mod)
    finally:
        gc.enable()


def test_own_imports_are_absolute() -> None:
    # protoc would write `from types import mount_pb2`, which is the stdlib `types` module.
    for path in API_OUT.rglob("*_pb2*.py*"):
        if path.suffix not in (".py", ".pyi"):  # not the bytecode caches a run without PYTHONDONTWRITEBYTECODE leaves
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            words = line.split()
            if len(words) >= 4 and words[0] == "from" and words[2] == "import" and words[3].endswith("_pb2"):
                top = words[1].split(".")[0]
                assert top not in {"types", "services", "events", "runtime"}, f"{path}: {line}"


SERVICES = {
    "containerd.services.version.v1.Version": ["Version"],
    "containerd.services.introspection.v1.Introspection": ["Plugins", "Server"],
    "containerd.services.namespaces.v1.Namespaces": ["Get", "List", "Create", "Update", "Delete"],
    "containerd.services.content.v1.Content": [
        "Info", "Update", "List", "Delete", "Read", "Status", "ListStatuses", "Write", "Abort",
    ],
    "containerd.services.images.v1.Images": ["Get", "List", "Create", "Update", "Delete"],
    "containerd.services.leases.v1.Leases": [
        "Create", "Delete", "List", "AddResource", "DeleteResource", "ListResources",
    ],
    "containerd.services.snapshots.v1.Snapshots": [
        "Prepare", "View", "Mounts", "Commit", "Remove", "Stat", "Update", "List", "Usage", "Cleanup",
    ],
    "containerd.services.diff.v1.Diff": ["Apply", "Diff"],
    "containerd.services.containers.v1.Containers": ["Get", "List", "ListStream", "Create", "Update", "Delete"],
    "containerd.services.tasks.v1.Tasks": [
        "Create", "Start", "Delete", "DeleteProcess", "Get", "List", "Kill", "Exec", "ResizePty",
        "CloseIO", "Pause", "Resume", "ListPids", "Checkpoint", "Update", "Metrics", "Wait",
    ],
    "containerd.services.events.v1.Events": ["Publish", "Forward", "Subscribe"],
    "containerd.services.events.ttrpc.v1.Events": ["Forward"],
    "containerd.task.v2.Task": [
        "State", "Create", "Start", "Delete", "Pids", "Pause", "Resume", "Checkpoint", "Kill", "Exec",
        "ResizePty", "CloseIO", "Update", "Wait", "Stats", "Connect", "Shutdown",
    ],
}


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_service_names_and_methods(pool: descriptor_pool.DescriptorPool, service: str) -> None:
    svc = pool.FindServiceByName(service)
    assert [m.name for m in svc.methods] == SERVICES[service]


# (service, method) -> (client streaming, server streaming, input, output)
STREAMING = {
    ("containerd.services.content.v1.Content", "Write"): (
        True, True,
        "containerd.services.content.v1.WriteContentRequest", "containerd.services.content.v1.WriteContentResponse",
    ),
    ("containerd.services.content.v1.Content", "Read"): (
        False, True,
        "containerd.services.content.v1.ReadContentRequest", "containerd.services.content.v1.ReadContentResponse",
    ),
    ("containerd.services.content.v1.Content", "List"): (
        False, True,
        "containerd.services.content.v1.ListContentRequest", "containerd.services.content.v1.ListContentResponse",
    ),
    ("containerd.services.snapshots.v1.Snapshots", "List"): (
        False, True,
        "containerd.services.snapshots.v1.ListSnapshotsRequest", "containerd.services.snapshots.v1.ListSnapshotsResponse",
    ),
    ("containerd.services.containers.v1.Containers", "ListStream"): (
        False, True,
        "containerd.services.containers.v1.ListContainersRequest", "containerd.services.containers.v1.ListContainerMessage",
    ),
    ("containerd.services.events.v1.Events", "Subscribe"): (
        False, True,
        "containerd.services.events.v1.SubscribeRequest", "containerd.services.events.v1.Envelope",
    ),
    ("containerd.services.version.v1.Version", "Version"): (
        False, False, "google.protobuf.Empty", "containerd.services.version.v1.VersionResponse",
    ),
    ("containerd.services.namespaces.v1.Namespaces", "Delete"): (
        False, False, "containerd.services.namespaces.v1.DeleteNamespaceRequest", "google.protobuf.Empty",
    ),
}


@pytest.mark.parametrize("key", sorted(STREAMING))
def test_method_shapes(pool: descriptor_pool.DescriptorPool, key: tuple[str, str]) -> None:
    method = pool.FindServiceByName(key[0]).methods_by_name[key[1]]
    client_streaming, server_streaming, input_type, output_type = STREAMING[key]
    assert method.client_streaming is client_streaming
    assert method.server_streaming is server_streaming
    assert method.input_type.full_name == input_type
    assert method.output_type.full_name == output_type


S, I64, U32, B, BY, M = (
    FieldDescriptor.TYPE_STRING,
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT32,
    FieldDescriptor.TYPE_BOOL,
    FieldDescriptor.TYPE_BYTES,
    FieldDescriptor.TYPE_MESSAGE,
)

# message -> {field: (number, type, message type or None)}
FIELDS = {
    "containerd.types.Descriptor": {
        "media_type": (1, S, None), "digest": (2, S, None), "size": (3, I64, None),
        "annotations": (5, M, "containerd.types.Descriptor.AnnotationsEntry"),
    },
    "containerd.types.Mount": {
        "type": (1, S, None), "source": (2, S, None), "target": (3, S, None), "options": (4, S, None),
    },
    "containerd.types.Platform": {"os": (1, S, None), "architecture": (2, S, None), "variant": (3, S, None)},
    "containerd.v1.types.Process": {
        "container_id": (1, S, None), "id": (2, S, None), "pid": (3, U32, None),
        "status": (4, FieldDescriptor.TYPE_ENUM, None), "stdin": (5, S, None), "stdout": (6, S, None),
        "stderr": (7, S, None), "terminal": (8, B, None), "exit_status": (9, U32, None),
        "exited_at": (10, M, "google.protobuf.Timestamp"),
    },
    "containerd.services.introspection.v1.Plugin": {
        "type": (1, S, None), "id": (2, S, None), "requires": (3, S, None),
        "platforms": (4, M, "containerd.types.Platform"),
        "exports": (5, M, "containerd.services.introspection.v1.Plugin.ExportsEntry"),
        "capabilities": (6, S, None), "init_err": (7, M, "google.rpc.Status"),
    },
    "containerd.services.events.v1.Envelope": {
        "timestamp": (1, M, "google.protobuf.Timestamp"), "namespace": (2, S, None), "topic": (3, S, None),
        "event": (4, M, "google.protobuf.Any"),
    },
    "containerd.services.events.ttrpc.v1.Envelope": {
        "timestamp": (1, M, "google.protobuf.Timestamp"), "namespace": (2, S, None), "topic": (3, S, None),
        "event": (4, M, "google.protobuf.Any"),
    },
    "containerd.events.TaskExit": {
        "container_id": (1, S, None), "id": (2, S, None), "pid": (3, U32, None), "exit_status": (4, U32, None),
        "exited_at": (5, M, "google.protobuf.Timestamp"),
    },
    "containerd.events.TaskDelete": {
        "container_id": (1, S, None), "pid": (2, U32, None), "exit_status": (3, U32, None),
        "exited_at": (4, M, "google.protobuf.Timestamp"), "id": (5, S, None),
    },
    "containerd.services.content.v1.WriteContentRequest": {
        "action": (1, FieldDescriptor.TYPE_ENUM, None), "ref": (2, S, None), "total": (3, I64, None),
        "expected": (4, S, None), "offset": (5, I64, None), "data": (6, BY, None),
        "labels": (7, M, "containerd.services.content.v1.WriteContentRequest.LabelsEntry"),
    },
    "containerd.services.images.v1.Image": {
        "name": (1, S, None), "labels": (2, M, "containerd.services.images.v1.Image.LabelsEntry"),
        "target": (3, M, "containerd.types.Descriptor"), "created_at": (7, M, "google.protobuf.Timestamp"),
        "updated_at": (8, M, "google.protobuf.Timestamp"),
    },
    "containerd.services.containers.v1.Container": {
        "id": (1, S, None), "labels": (2, M, "containerd.services.containers.v1.Container.LabelsEntry"),
        "image": (3, S, None), "runtime": (4, M, "containerd.services.containers.v1.Container.Runtime"),
        "spec": (5, M, "google.protobuf.Any"), "snapshotter": (6, S, None), "snapshot_key": (7, S, None),
        "created_at": (8, M, "google.protobuf.Timestamp"), "updated_at": (9, M, "google.protobuf.Timestamp"),
        "extensions": (10, M, "containerd.services.containers.v1.Container.ExtensionsEntry"),
    },
    "containerd.services.tasks.v1.CreateTaskRequest": {
        "container_id": (1, S, None), "rootfs": (3, M, "containerd.types.Mount"), "stdin": (4, S, None),
        "stdout": (5, S, None), "stderr": (6, S, None), "terminal": (7, B, None),
        "checkpoint": (8, M, "containerd.types.Descriptor"), "options": (9, M, "google.protobuf.Any"),
        "runtime_path": (10, S, None),
    },
    "containerd.services.diff.v1.DiffResponse": {"diff": (3, M, "containerd.types.Descriptor")},
    "containerd.services.leases.v1.CreateRequest": {
        "id": (1, S, None), "labels": (3, M, "containerd.services.leases.v1.CreateRequest.LabelsEntry"),
    },
    "containerd.task.v2.CreateTaskRequest": {
        "id": (1, S, None), "bundle": (2, S, None), "rootfs": (3, M, "containerd.types.Mount"),
        "terminal": (4, B, None), "stdin": (5, S, None), "stdout": (6, S, None), "stderr": (7, S, None),
        "checkpoint": (8, S, None), "parent_checkpoint": (9, S, None), "options": (10, M, "google.protobuf.Any"),
    },
    "containerd.task.v2.StateResponse": {
        "id": (1, S, None), "bundle": (2, S, None), "pid": (3, U32, None),
        "status": (4, FieldDescriptor.TYPE_ENUM, None), "stdin": (5, S, None), "stdout": (6, S, None),
        "stderr": (7, S, None), "terminal": (8, B, None), "exit_status": (9, U32, None),
        "exited_at": (10, M, "google.protobuf.Timestamp"), "exec_id": (11, S, None),
    },
}


@pytest.mark.parametrize("message", sorted(FIELDS))
def test_message_fields(pool: descriptor_pool.DescriptorPool, message: str) -> None:
    desc = pool.FindMessageTypeByName(message)
    want = FIELDS[message]
    assert sorted(f.name for f in desc.fields) == sorted(want), "field set differs"
    for name, (number, ftype, mtype) in want.items():
        field = desc.fields_by_name[name]
        assert field.number == number, f"{message}.{name}"
        assert field.type == ftype, f"{message}.{name}"
        if mtype is not None:
            assert field.message_type.full_name == mtype, f"{message}.{name}"


ENUMS = {
    "containerd.v1.types.Status": ["UNKNOWN", "CREATED", "RUNNING", "STOPPED", "PAUSED", "PAUSING"],
    "containerd.services.content.v1.WriteAction": ["STAT", "WRITE", "COMMIT"],
    "containerd.services.snapshots.v1.Kind": ["UNKNOWN", "VIEW", "ACTIVE", "COMMITTED"],
}


@pytest.mark.parametrize("enum", sorted(ENUMS))
def test_enum_values(pool: descriptor_pool.DescriptorPool, enum: str) -> None:
    desc = pool.FindEnumTypeByName(enum)
    assert [(v.name, v.number) for v in desc.values] == [(n, i) for i, n in enumerate(ENUMS[enum])]


EVENT_TYPES = [
    "containerd.events.ContainerCreate", "containerd.events.ContainerCreate.Runtime",
    "containerd.events.ContainerUpdate", "containerd.events.ContainerDelete",
    "containerd.events.ContentDelete",
    # image events are in the images service package, not containerd.events
    "containerd.services.images.v1.ImageCreate", "containerd.services.images.v1.ImageUpdate",
    "containerd.services.images.v1.ImageDelete",
    "containerd.events.NamespaceCreate", "containerd.events.NamespaceUpdate", "containerd.events.NamespaceDelete",
    "containerd.events.SnapshotPrepare", "containerd.events.SnapshotCommit", "containerd.events.SnapshotRemove",
    "containerd.events.TaskCreate", "containerd.events.TaskStart", "containerd.events.TaskDelete",
    "containerd.events.TaskIO", "containerd.events.TaskExit", "containerd.events.TaskOOM",
    "containerd.events.TaskExecAdded", "containerd.events.TaskExecStarted", "containerd.events.TaskPaused",
    "containerd.events.TaskResumed", "containerd.events.TaskCheckpointed",
]


@pytest.mark.parametrize("name", EVENT_TYPES)
def test_event_type_names(pool: descriptor_pool.DescriptorPool, name: str) -> None:
    assert pool.FindMessageTypeByName(name).full_name == name


def test_task_exit_round_trips_in_envelope(pool: descriptor_pool.DescriptorPool) -> None:
    from google.protobuf import any_pb2

    from pycontainerd.api.events import task_pb2
    from pycontainerd.api.services.events.v1 import events_pb2

    exit_ev = task_pb2.TaskExit(container_id="c1", id="c1", pid=42, exit_status=137)
    exit_ev.exited_at.FromSeconds(1_700_000_000)
    # containerd's typeurl names proto events by their bare full name (no type.googleapis.com/).
    env = events_pb2.Envelope(
        namespace="default", topic="/tasks/exit",
        event=any_pb2.Any(type_url="containerd.events.TaskExit", value=exit_ev.SerializeToString()),
    )
    back = events_pb2.Envelope.FromString(env.SerializeToString())
    got = task_pb2.TaskExit.FromString(back.event.value)
    assert (got.container_id, got.pid, got.exit_status, got.exited_at.seconds) == ("c1", 42, 137, 1_700_000_000)
    # Field 4 (exit_status) as varint: tag byte 0x20.
    assert bytes([0x20, 137, 1]) in exit_ev.SerializeToString()


# --- Kubernetes CRI runtime.v1 ----------------------------------------------------------------
# Names and numbers as k8s.io/cri-api publishes them: a kubelet, crictl and critest encode and
# decode these messages with their own generated code, so every one is a wire fact.

CRI_SERVICES = {
    "runtime.v1.RuntimeService": [
        "Version", "RunPodSandbox", "StopPodSandbox", "RemovePodSandbox", "PodSandboxStatus",
        "ListPodSandbox", "StreamPodSandboxes", "CreateContainer", "StartContainer", "StopContainer",
        "RemoveContainer", "ListContainers", "StreamContainers", "ContainerStatus", "UpdateContainerResources",
        "ReopenContainerLog", "ExecSync", "Exec", "Attach", "PortForward", "ContainerStats",
        "ListContainerStats", "StreamContainerStats", "PodSandboxStats", "ListPodSandboxStats",
        "StreamPodSandboxStats", "UpdateRuntimeConfig", "Status", "CheckpointContainer", "GetContainerEvents",
        "ListMetricDescriptors", "ListPodSandboxMetrics", "StreamPodSandboxMetrics", "RuntimeConfig",
        "UpdatePodSandboxResources",
    ],
    "runtime.v1.ImageService": [
        "ListImages", "StreamImages", "ImageStatus", "PullImage", "RemoveImage", "ImageFsInfo",
    ],
}


@pytest.mark.parametrize("service", sorted(CRI_SERVICES))
def test_cri_service_methods(pool: descriptor_pool.DescriptorPool, service: str) -> None:
    svc = pool.FindServiceByName(service)
    assert [m.name for m in svc.methods] == CRI_SERVICES[service]
    streaming = {m.name for m in svc.methods if m.server_streaming}
    assert streaming == {m for m in CRI_SERVICES[service] if m.startswith("Stream") or m == "GetContainerEvents"}
    assert not any(m.client_streaming for m in svc.methods)


def test_cri_method_types(pool: descriptor_pool.DescriptorPool) -> None:
    rs = pool.FindServiceByName("runtime.v1.RuntimeService")
    events = rs.methods_by_name["GetContainerEvents"]
    assert (events.input_type.full_name, events.output_type.full_name) == (
        "runtime.v1.GetEventsRequest", "runtime.v1.ContainerEventResponse")
    status = rs.methods_by_name["PodSandboxStatus"]
    assert status.output_type.full_name == "runtime.v1.PodSandboxStatusResponse"


I32, U64, E = FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_ENUM

CRI_FIELDS = {
    "runtime.v1.PodSandboxMetadata": {"name": (1, S), "uid": (2, S), "namespace": (3, S), "attempt": (4, U32)},
    "runtime.v1.PodSandboxConfig": {
        "metadata": (1, M), "hostname": (2, S), "log_directory": (3, S), "dns_config": (4, M),
        "port_mappings": (5, M), "labels": (6, M), "annotations": (7, M), "linux": (8, M), "windows": (9, M),
    },
    "runtime.v1.Mount": {
        # the published names really are camelCase for 6 and 7
        "container_path": (1, S), "host_path": (2, S), "readonly": (3, B), "selinux_relabel": (4, B),
        "propagation": (5, E), "uidMappings": (6, M), "gidMappings": (7, M), "recursive_read_only": (8, B),
        "image": (9, M), "image_sub_path": (10, S),
    },
    "runtime.v1.ImageSpec": {
        "image": (1, S), "annotations": (2, M), "user_specified_image": (18, S), "runtime_handler": (19, S),
        "image_ref": (20, S),
    },
    "runtime.v1.LinuxContainerResources": {
        "cpu_period": (1, I64), "cpu_quota": (2, I64), "cpu_shares": (3, I64), "memory_limit_in_bytes": (4, I64),
        "oom_score_adj": (5, I64), "cpuset_cpus": (6, S), "cpuset_mems": (7, S), "hugepage_limits": (8, M),
        "unified": (9, M), "memory_swap_limit_in_bytes": (10, I64),
    },
    "runtime.v1.LinuxSandboxSecurityContext": {
        "namespace_options": (1, M), "selinux_options": (2, M), "run_as_user": (3, M), "run_as_group": (8, M),
        "readonly_rootfs": (4, B), "supplemental_groups": (5, I64), "supplemental_groups_policy": (11, E),
        "privileged": (6, B), "seccomp": (9, M), "apparmor": (10, M), "seccomp_profile_path": (7, S),
    },
    "runtime.v1.LinuxContainerSecurityContext": {
        "capabilities": (1, M), "privileged": (2, B), "namespace_options": (3, M), "selinux_options": (4, M),
        "run_as_user": (5, M), "run_as_group": (12, M), "run_as_username": (6, S), "readonly_rootfs": (7, B),
        "supplemental_groups": (8, I64), "supplemental_groups_policy": (17, E), "no_new_privs": (11, B),
        "masked_paths": (13, S), "readonly_paths": (14, S), "seccomp": (15, M), "apparmor": (16, M),
        "apparmor_profile": (9, S), "seccomp_profile_path": (10, S),
    },
    "runtime.v1.ContainerConfig": {
        "metadata": (1, M), "image": (2, M), "command": (3, S), "args": (4, S), "working_dir": (5, S),
        "envs": (6, M), "mounts": (7, M), "devices": (8, M), "labels": (9, M), "annotations": (10, M),
        "log_path": (11, S), "stdin": (12, B), "stdin_once": (13, B), "tty": (14, B), "linux": (15, M),
        "windows": (16, M), "CDI_devices": (17, M), "stop_signal": (18, E),
    },
    "runtime.v1.ContainerStatus": {
        "id": (1, S), "metadata": (2, M), "state": (3, E), "created_at": (4, I64), "started_at": (5, I64),
        "finished_at": (6, I64), "exit_code": (7, I32), "image": (8, M), "image_ref": (9, S), "reason": (10, S),
        "message": (11, S), "labels": (12, M), "annotations": (13, M), "mounts": (14, M), "log_path": (15, S),
        "resources": (16, M), "image_id": (17, S), "user": (18, M), "stop_signal": (19, E),
    },
    "runtime.v1.PodSandboxStatus": {
        "id": (1, S), "metadata": (2, M), "state": (3, E), "created_at": (4, I64), "network": (5, M),
        "linux": (6, M), "labels": (7, M), "annotations": (8, M), "runtime_handler": (9, S),
    },
    "runtime.v1.Image": {
        "id": (1, S), "repo_tags": (2, S), "repo_digests": (3, S), "size": (4, U64), "uid": (5, M),
        "username": (6, S), "spec": (7, M), "pinned": (8, B),
    },
    "runtime.v1.AuthConfig": {
        "username": (1, S), "password": (2, S), "auth": (3, S), "server_address": (4, S),
        "identity_token": (5, S), "registry_token": (6, S),
    },
    "runtime.v1.ExecSyncRequest": {"container_id": (1, S), "cmd": (2, S), "timeout": (3, I64)},
    "runtime.v1.ExecSyncResponse": {"stdout": (1, BY), "stderr": (2, BY), "exit_code": (3, I32)},
    "runtime.v1.PsiStats": {"Full": (1, M), "Some": (2, M)},
    "runtime.v1.Namespace": {"options": (2, M)},
}


@pytest.mark.parametrize("message", sorted(CRI_FIELDS))
def test_cri_message_fields(pool: descriptor_pool.DescriptorPool, message: str) -> None:
    desc = pool.FindMessageTypeByName(message)
    want = CRI_FIELDS[message]
    assert sorted(f.name for f in desc.fields) == sorted(want), "field set differs"
    for name, (number, ftype) in want.items():
        field = desc.fields_by_name[name]
        assert (field.number, field.type) == (number, ftype), f"{message}.{name}"


CRI_ENUMS = {
    "runtime.v1.ContainerState": ["CONTAINER_CREATED", "CONTAINER_RUNNING", "CONTAINER_EXITED", "CONTAINER_UNKNOWN"],
    "runtime.v1.PodSandboxState": ["SANDBOX_READY", "SANDBOX_NOTREADY"],
    "runtime.v1.NamespaceMode": ["POD", "CONTAINER", "NODE", "TARGET"],
    "runtime.v1.MountPropagation": [
        "PROPAGATION_PRIVATE", "PROPAGATION_HOST_TO_CONTAINER", "PROPAGATION_BIDIRECTIONAL"],
    "runtime.v1.Protocol": ["TCP", "UDP", "SCTP"],
    "runtime.v1.ContainerEventType": [
        "CONTAINER_CREATED_EVENT", "CONTAINER_STARTED_EVENT", "CONTAINER_STOPPED_EVENT", "CONTAINER_DELETED_EVENT"],
    "runtime.v1.SecurityProfile.ProfileType": ["RuntimeDefault", "Unconfined", "Localhost"],
    "runtime.v1.CgroupDriver": ["SYSTEMD", "CGROUPFS"],
}


@pytest.mark.parametrize("enum", sorted(CRI_ENUMS))
def test_cri_enum_values(pool: descriptor_pool.DescriptorPool, enum: str) -> None:
    desc = pool.FindEnumTypeByName(enum)
    assert [(v.name, v.number) for v in desc.values] == [(n, i) for i, n in enumerate(CRI_ENUMS[enum])]


def test_cri_signal_enum(pool: descriptor_pool.DescriptorPool) -> None:
    desc = pool.FindEnumTypeByName("runtime.v1.Signal")
    by_name = {v.name: v.number for v in desc.values}
    assert (by_name["RUNTIME_DEFAULT"], by_name["SIGKILL"], by_name["SIGTERM"], by_name["SIGRTMAX"]) == (0, 13, 23, 65)
    assert len(desc.values) == 66


def test_cri_bytes_on_the_wire() -> None:
    from pycontainerd.api.cri.runtime.v1 import api_pb2

    # ImageSpec.image_ref is field 20: tag (20 << 3 | 2) = 162 = varint a2 01.
    assert api_pb2.ImageSpec(image_ref="x").SerializeToString() == b"\xa2\x01\x01x"
    # StopContainerRequest.timeout is field 2, varint.
    assert api_pb2.StopContainerRequest(container_id="c", timeout=30).SerializeToString() == b"\x0a\x01c\x10\x1e"
