"""The messages the shim serves and sends, without ``google.protobuf`` (see
:mod:`pycontainerd.sysutil.protowire` for the encoding and why).

Field numbers, names and types are those of the ``.proto`` files under ``api/``:
``runtime/task/v2/shim.proto`` (the ``containerd.task.v2.Task`` service), ``types/mount.proto``,
``types/task/task.proto``, ``events/task.proto`` (the task events),
``services/ttrpc/events/v1/events.proto`` (``Forward``), ``runtime/runc/options/oci.proto``
(runc options), ``runtime/linux/runctypes/runc.proto`` (the legacy runtime's options) and ``cgroups/v1|v2/metrics.proto`` (``Stats``). ``tests/unit/test_shim_proto.py``
compares every class here with the generated descriptor of the same name and round-trips
random values through ``google.protobuf``.

Names mirror the generated modules (``proto.StateRequest`` ↔ ``shim_pb2.StateRequest``);
an ``Any`` field is a :class:`~pycontainerd.sysutil.protowire.Any` and a ``Timestamp`` a
:class:`~pycontainerd.sysutil.protowire.Timestamp` (``None`` when absent).
"""

from __future__ import annotations

from ..sysutil.protowire import (
    BOOL,
    EMPTY,
    INT32,
    MAP,
    MESSAGE,
    REPEATED,
    STRING,
    UINT32,
    UINT64,
    Any,
    Empty,
    Message,
    Timestamp,
    message,
    pack,
)

__all__ = ["EMPTY", "Any", "Empty", "Message", "Timestamp", "pack"]  # and the messages below

S, U32, U64, B = STRING, UINT32, UINT64, BOOL
M, R = MESSAGE, REPEATED


def _m(full_name: str, *fields: tuple) -> type[Message]:
    return message(full_name, *fields)


# --- containerd.types / containerd.v1.types -------------------------------------------------

Mount = _m("containerd.types.Mount", (1, "type", S), (2, "source", S), (3, "target", S), (4, "options", S | R))

# containerd.v1.types.Status (an enum)
UNKNOWN, CREATED, RUNNING, STOPPED, PAUSED, PAUSING = range(6)

ProcessInfo = _m("containerd.v1.types.ProcessInfo", (1, "pid", U32), (2, "info", M, Any))

# --- containerd.task.v2 (runtime/task/v2/shim.proto) -----------------------------------------

_ID = (1, "id", S)
_ID_EXEC = ((1, "id", S), (2, "exec_id", S))

CreateTaskRequest = _m(
    "containerd.task.v2.CreateTaskRequest", _ID, (2, "bundle", S), (3, "rootfs", M | R, Mount), (4, "terminal", B),
    (5, "stdin", S), (6, "stdout", S), (7, "stderr", S), (8, "checkpoint", S), (9, "parent_checkpoint", S),
    (10, "options", M, Any))
CreateTaskResponse = _m("containerd.task.v2.CreateTaskResponse", (1, "pid", U32))
DeleteRequest = _m("containerd.task.v2.DeleteRequest", *_ID_EXEC)
DeleteResponse = _m("containerd.task.v2.DeleteResponse", (1, "pid", U32), (2, "exit_status", U32),
                    (3, "exited_at", M, Timestamp))
ExecProcessRequest = _m(
    "containerd.task.v2.ExecProcessRequest", *_ID_EXEC, (3, "terminal", B), (4, "stdin", S), (5, "stdout", S),
    (6, "stderr", S), (7, "spec", M, Any))
ResizePtyRequest = _m("containerd.task.v2.ResizePtyRequest", *_ID_EXEC, (3, "width", U32), (4, "height", U32))
StateRequest = _m("containerd.task.v2.StateRequest", *_ID_EXEC)
StateResponse = _m(
    "containerd.task.v2.StateResponse", _ID, (2, "bundle", S), (3, "pid", U32), (4, "status", INT32),
    (5, "stdin", S), (6, "stdout", S), (7, "stderr", S), (8, "terminal", B), (9, "exit_status", U32),
    (10, "exited_at", M, Timestamp), (11, "exec_id", S))
KillRequest = _m("containerd.task.v2.KillRequest", *_ID_EXEC, (3, "signal", U32), (4, "all", B))
CloseIORequest = _m("containerd.task.v2.CloseIORequest", *_ID_EXEC, (3, "stdin", B))
PidsRequest = _m("containerd.task.v2.PidsRequest", _ID)
PidsResponse = _m("containerd.task.v2.PidsResponse", (1, "processes", M | R, ProcessInfo))
CheckpointTaskRequest = _m("containerd.task.v2.CheckpointTaskRequest", _ID, (2, "path", S), (3, "options", M, Any))
UpdateTaskRequest = _m("containerd.task.v2.UpdateTaskRequest", _ID, (2, "resources", M, Any),
                       (3, "annotations", MAP))
StartRequest = _m("containerd.task.v2.StartRequest", *_ID_EXEC)
StartResponse = _m("containerd.task.v2.StartResponse", (1, "pid", U32))
WaitRequest = _m("containerd.task.v2.WaitRequest", *_ID_EXEC)
WaitResponse = _m("containerd.task.v2.WaitResponse", (1, "exit_status", U32), (2, "exited_at", M, Timestamp))
StatsRequest = _m("containerd.task.v2.StatsRequest", _ID)
StatsResponse = _m("containerd.task.v2.StatsResponse", (1, "stats", M, Any))
ConnectRequest = _m("containerd.task.v2.ConnectRequest", _ID)
ConnectResponse = _m("containerd.task.v2.ConnectResponse", (1, "shim_pid", U32), (2, "task_pid", U32),
                     (3, "version", S))
ShutdownRequest = _m("containerd.task.v2.ShutdownRequest", _ID, (2, "now", B))
PauseRequest = _m("containerd.task.v2.PauseRequest", _ID)
ResumeRequest = _m("containerd.task.v2.ResumeRequest", _ID)

# --- containerd.events (events/task.proto) -------------------------------------------------------

_CID = (1, "container_id", S)

TaskIO = _m("containerd.events.TaskIO", (1, "stdin", S), (2, "stdout", S), (3, "stderr", S), (4, "terminal", B))
TaskCreate = _m("containerd.events.TaskCreate", _CID, (2, "bundle", S), (3, "rootfs", M | R, Mount),
                (4, "io", M, TaskIO), (5, "checkpoint", S), (6, "pid", U32))
TaskStart = _m("containerd.events.TaskStart", _CID, (2, "pid", U32))
TaskDelete = _m("containerd.events.TaskDelete", _CID, (2, "pid", U32), (3, "exit_status", U32),
                (4, "exited_at", M, Timestamp), (5, "id", S))
TaskExit = _m("containerd.events.TaskExit", _CID, (2, "id", S), (3, "pid", U32), (4, "exit_status", U32),
              (5, "exited_at", M, Timestamp))
TaskOOM = _m("containerd.events.TaskOOM", _CID)
TaskExecAdded = _m("containerd.events.TaskExecAdded", _CID, (2, "exec_id", S))
TaskExecStarted = _m("containerd.events.TaskExecStarted", _CID, (2, "exec_id", S), (3, "pid", U32))
TaskPaused = _m("containerd.events.TaskPaused", _CID)
TaskResumed = _m("containerd.events.TaskResumed", _CID)

# --- containerd.services.events.ttrpc.v1 (services/ttrpc/events/v1/events.proto) ----------------

Envelope = _m("containerd.services.events.ttrpc.v1.Envelope", (1, "timestamp", M, Timestamp), (2, "namespace", S),
              (3, "topic", S), (4, "event", M, Any))
ForwardRequest = _m("containerd.services.events.ttrpc.v1.ForwardRequest", (1, "envelope", M, Envelope))

# --- containerd.runc.v1 (runtime/runc/options/oci.proto) ----------------------------------------

Options = _m(
    "containerd.runc.v1.Options", (1, "no_pivot_root", B), (2, "no_new_keyring", B), (3, "shim_cgroup", S),
    (4, "io_uid", U32), (5, "io_gid", U32), (6, "binary_name", S), (7, "root", S), (8, "criu_path", S),
    (9, "systemd_cgroup", B), (10, "criu_image_path", S), (11, "criu_work_path", S))
ProcessDetails = _m("containerd.runc.v1.ProcessDetails", (1, "exec_id", S))

# --- containerd.linux.runc (runtime/linux/runctypes/runc.proto): the legacy v1 runtime's options

RuncOptions = _m("containerd.linux.runc.RuncOptions", (1, "runtime", S), (2, "runtime_root", S), (3, "criu_path", S),
                 (4, "systemd_cgroup", B))
LEGACY_OPTION_NAMES = {"runtime": "binary_name", "runtime_root": "root", "criu_path": "criu_path",
                       "systemd_cgroup": "systemd_cgroup"}
"""A :data:`RuncOptions` field → the :data:`Options` field that means the same."""


def options_dict(opts: Message) -> dict:
    """The fields of an :data:`Options` that are set, by name (``ListFields`` of protobuf)."""
    return {name: getattr(opts, name) for _n, name, _k, _s in opts.FIELDS if getattr(opts, name)}


# --- cgroup metrics (cgroups/v1|v2/metrics.proto), written by Stats -----------------------------


def _u64s(full_name: str, *names: str, first: int = 1) -> type[Message]:
    """A message of consecutive ``uint64`` fields numbered from ``first``."""
    return _m(full_name, *((first + i, n, U64) for i, n in enumerate(names)))


V1 = "io.containerd.cgroups.v1."
V1HugetlbStat = _m(V1 + "HugetlbStat", (1, "usage", U64), (2, "max", U64), (3, "failcnt", U64), (4, "pagesize", S))
V1PidsStat = _u64s(V1 + "PidsStat", "current", "limit")
V1CPUUsage = _m(V1 + "CPUUsage", (1, "total", U64), (2, "kernel", U64), (3, "user", U64), (4, "per_cpu", U64 | R))
V1Throttle = _u64s(V1 + "Throttle", "periods", "throttled_periods", "throttled_time")
V1CPUStat = _m(V1 + "CPUStat", (1, "usage", M, V1CPUUsage), (2, "throttling", M, V1Throttle))
V1MemoryEntry = _u64s(V1 + "MemoryEntry", "limit", "usage", "max", "failcnt")
V1_MEMORY_STAT_FIELDS = (
    "cache", "rss", "rss_huge", "mapped_file", "dirty", "writeback", "pg_pg_in", "pg_pg_out", "pg_fault",
    "pg_maj_fault", "inactive_anon", "active_anon", "inactive_file", "active_file", "unevictable",
    "hierarchical_memory_limit", "hierarchical_swap_limit", "total_cache", "total_rss", "total_rss_huge",
    "total_mapped_file", "total_dirty", "total_writeback", "total_pg_pg_in", "total_pg_pg_out", "total_pg_fault",
    "total_pg_maj_fault", "total_inactive_anon", "total_active_anon", "total_inactive_file", "total_active_file",
    "total_unevictable")
V1MemoryStat = _m(V1 + "MemoryStat", *((i + 1, n, U64) for i, n in enumerate(V1_MEMORY_STAT_FIELDS)),
                  (33, "usage", M, V1MemoryEntry), (34, "swap", M, V1MemoryEntry), (35, "kernel", M, V1MemoryEntry),
                  (36, "kernel_tcp", M, V1MemoryEntry))
V1BlkIOEntry = _m(V1 + "BlkIOEntry", (1, "op", S), (2, "device", S), (3, "major", U64), (4, "minor", U64),
                  (5, "value", U64))
V1BlkIOStat = _m(V1 + "BlkIOStat", *((i + 1, n, M | R, V1BlkIOEntry) for i, n in enumerate((
    "io_service_bytes_recursive", "io_serviced_recursive", "io_queued_recursive", "io_service_time_recursive",
    "io_wait_time_recursive", "io_merged_recursive", "io_time_recursive", "sectors_recursive"))))
V1RdmaEntry = _m(V1 + "RdmaEntry", (1, "device", S), (2, "hca_handles", U32), (3, "hca_objects", U32))
V1RdmaStat = _m(V1 + "RdmaStat", (1, "current", M | R, V1RdmaEntry), (2, "limit", M | R, V1RdmaEntry))
V1NetworkStat = _m(V1 + "NetworkStat", (1, "name", S), *((i + 2, n, U64) for i, n in enumerate((
    "rx_bytes", "rx_packets", "rx_errors", "rx_dropped", "tx_bytes", "tx_packets", "tx_errors", "tx_dropped"))))
V1CgroupStats = _u64s(V1 + "CgroupStats", "nr_sleeping", "nr_running", "nr_stopped", "nr_uninterruptible",
                      "nr_io_wait")
V1MemoryOomControl = _u64s(V1 + "MemoryOomControl", "oom_kill_disable", "under_oom", "oom_kill")
V1Metrics = _m(V1 + "Metrics", (1, "hugetlb", M | R, V1HugetlbStat), (2, "pids", M, V1PidsStat),
               (3, "cpu", M, V1CPUStat), (4, "memory", M, V1MemoryStat), (5, "blkio", M, V1BlkIOStat),
               (6, "rdma", M, V1RdmaStat), (7, "network", M | R, V1NetworkStat),
               (8, "cgroup_stats", M, V1CgroupStats), (9, "memory_oom_control", M, V1MemoryOomControl))

V2 = "io.containerd.cgroups.v2."
V2PidsStat = _u64s(V2 + "PidsStat", "current", "limit")
V2CPUStat = _u64s(V2 + "CPUStat", "usage_usec", "user_usec", "system_usec", "nr_periods", "nr_throttled",
                  "throttled_usec")
V2_MEMORY_STAT_FIELDS = (
    "anon", "file", "kernel_stack", "slab", "sock", "shmem", "file_mapped", "file_dirty", "file_writeback",
    "anon_thp", "inactive_anon", "active_anon", "inactive_file", "active_file", "unevictable", "slab_reclaimable",
    "slab_unreclaimable", "pgfault", "pgmajfault", "workingset_refault", "workingset_activate",
    "workingset_nodereclaim", "pgrefill", "pgscan", "pgsteal", "pgactivate", "pgdeactivate", "pglazyfree",
    "pglazyfreed", "thp_fault_alloc", "thp_collapse_alloc", "usage", "usage_limit", "swap_usage", "swap_limit")
V2MemoryStat = _u64s(V2 + "MemoryStat", *V2_MEMORY_STAT_FIELDS)
V2RdmaEntry = _m(V2 + "RdmaEntry", (1, "device", S), (2, "hca_handles", U32), (3, "hca_objects", U32))
V2RdmaStat = _m(V2 + "RdmaStat", (1, "current", M | R, V2RdmaEntry), (2, "limit", M | R, V2RdmaEntry))
V2IOEntry = _u64s(V2 + "IOEntry", "major", "minor", "rbytes", "wbytes", "rios", "wios")
V2IOStat = _m(V2 + "IOStat", (1, "usage", M | R, V2IOEntry))
V2HugeTlbStat = _m(V2 + "HugeTlbStat", (1, "current", U64), (2, "max", U64), (3, "pagesize", S))
V2MemoryEvents = _u64s(V2 + "MemoryEvents", "low", "high", "max", "oom", "oom_kill")
V2Metrics = _m(V2 + "Metrics", (1, "pids", M, V2PidsStat), (2, "cpu", M, V2CPUStat), (4, "memory", M, V2MemoryStat),
               (5, "rdma", M, V2RdmaStat), (6, "io", M, V2IOStat), (7, "hugetlb", M | R, V2HugeTlbStat),
               (8, "memory_events", M, V2MemoryEvents))

MESSAGES: tuple[type[Message], ...] = tuple(
    v for v in list(globals().values()) if isinstance(v, type) and issubclass(v, Message) and v.NAME)
"""Every message class defined here (the tests walk it)."""
