"""In-memory stores of CRI sandboxes and containers, with their persisted parts.

Each object has two halves, as in containerd's CRI:

- *metadata* that never changes after creation (ids, name, the CRI config, image, log path,
  netns path and IPs): stored as JSON in the extension ``io.cri-containerd.<kind>.metadata``
  of the object's containerd container record (namespace ``k8s.io``), so the containerd API
  shows it and a restarted daemon rebuilds the store from it;
- *status* that changes (state, pid, times, exit code, reason): a JSON file
  ``<plugin root>/<kind>es/<id>/status.json`` rewritten atomically on each change
  (containerd's status checkpoint).

Lookups take an id or a unique prefix of one (containerd's ``truncindex``); names are
reserved for exactly one id (kubelet relies on "name is reserved for <id>" to recover).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from google.protobuf import json_format
from google.protobuf.message import Message

from ..api.cri.runtime.v1 import api_pb2 as cri
from ..errdefs import AlreadyExists, InvalidArgument, NotFound, quote
from .state import ContainerState, SandboxState, check_transition

SANDBOX_METADATA_EXT = "io.cri-containerd.sandbox.metadata"
CONTAINER_METADATA_EXT = "io.cri-containerd.container.metadata"
SANDBOX_METADATA_URL = "pycontainerd.cri.v1.SandboxMetadata"
CONTAINER_METADATA_URL = "pycontainerd.cri.v1.ContainerMetadata"
KIND_LABEL = "io.cri-containerd.kind"
KIND_SANDBOX = "sandbox"
KIND_CONTAINER = "container"


def pb_to_dict(msg: Message) -> dict[str, Any]:
    return json_format.MessageToDict(msg, preserving_proto_field_name=True)


def pb_from_dict(cls: type, data: dict[str, Any] | None) -> Any:
    msg = cls()
    if data:
        json_format.ParseDict(data, msg, ignore_unknown_fields=True)
    return msg


def write_json_atomic(path: str, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` through a temp file, fsync and rename."""
    d = os.path.dirname(path)
    os.makedirs(d, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".status-", dir=d)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_json(path: str) -> Any:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


@dataclass(eq=False)
class Sandbox:
    """A pod sandbox: a pause container in its own namespaces, plus its network."""

    id: str
    name: str
    config: cri.PodSandboxConfig
    runtime_handler: str
    runtime_name: str
    created_at: int
    image: str = ""                 # the sandbox image's reference as configured
    image_id: str = ""              # sha256:<config digest>
    netns_path: str = ""            # "" for host network
    ip: str = ""
    additional_ips: list[str] = field(default_factory=list)
    cni_result: dict[str, Any] | None = None
    # status
    state: SandboxState = SandboxState.INIT
    pid: int = 0
    network_ready: bool = False     # CNI ADD done and not yet torn down
    exit_status: int = 0
    exited_at: int = 0
    # runtime only
    spec: dict[str, Any] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)
    exited: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    monitor: asyncio.Task | None = field(default=None, repr=False)

    KIND = "sandbox"

    def set_state(self, new: SandboxState) -> None:
        if new is self.state:
            return
        check_transition("sandbox", self.id, self.state, new)
        self.state = new

    @property
    def host_network(self) -> bool:
        return self.namespace_options.network == cri.NODE

    @property
    def namespace_options(self) -> cri.NamespaceOption:
        return self.config.linux.security_context.namespace_options

    def metadata(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "config": pb_to_dict(self.config),
            "runtime_handler": self.runtime_handler, "runtime_name": self.runtime_name,
            "created_at": self.created_at, "image": self.image, "image_id": self.image_id,
            "netns_path": self.netns_path, "ip": self.ip, "additional_ips": list(self.additional_ips),
            "cni_result": self.cni_result,
        }

    def status(self) -> dict[str, Any]:
        return {"state": self.state.value, "pid": self.pid, "network_ready": self.network_ready,
                "exit_status": self.exit_status, "exited_at": self.exited_at}

    @classmethod
    def from_metadata(cls, meta: dict[str, Any], status: dict[str, Any] | None) -> Sandbox:
        sb = cls(id=meta["id"], name=meta["name"], config=pb_from_dict(cri.PodSandboxConfig, meta.get("config")),
                 runtime_handler=meta.get("runtime_handler", ""), runtime_name=meta.get("runtime_name", ""),
                 created_at=int(meta.get("created_at", 0)), image=meta.get("image", ""),
                 image_id=meta.get("image_id", ""), netns_path=meta.get("netns_path", ""), ip=meta.get("ip", ""),
                 additional_ips=list(meta.get("additional_ips") or []), cni_result=meta.get("cni_result"))
        status = status or {}
        sb.state = SandboxState(status.get("state", SandboxState.UNKNOWN.value))
        sb.pid = int(status.get("pid", 0))
        sb.network_ready = bool(status.get("network_ready", bool(sb.netns_path)))
        sb.exit_status = int(status.get("exit_status", 0))
        sb.exited_at = int(status.get("exited_at", 0))
        return sb


@dataclass(eq=False)
class Container:
    """A container in a sandbox."""

    id: str
    name: str
    sandbox_id: str
    config: cri.ContainerConfig
    created_at: int
    image_ref: str                  # as the kubelet named it (config.image.image)
    image_id: str                   # sha256:<config digest>
    image_repo_tag: str = ""
    image_repo_digest: str = ""
    log_path: str = ""
    runtime_name: str = ""
    stop_signal: str = "SIGTERM"
    # status
    state: ContainerState = ContainerState.CREATED
    pid: int = 0
    started_at: int = 0
    finished_at: int = 0
    exit_code: int = 0
    reason: str = ""
    message: str = ""
    stdout_path: str = ""           # fifos the shim writes to
    stderr_path: str = ""
    resources: cri.LinuxContainerResources = field(default_factory=cri.LinuxContainerResources)
    user: dict[str, Any] = field(default_factory=dict)   # uid, gid, additional gids
    # runtime only
    spec: dict[str, Any] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)
    exited: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    monitor: asyncio.Task | None = field(default=None, repr=False)
    io: Any = field(default=None, repr=False)             # logs.ContainerIO while running
    exiting: bool = field(default=False, repr=False)      # its exit is being recorded

    KIND = "container"

    def set_state(self, new: ContainerState) -> None:
        if new is self.state:
            return
        check_transition("container", self.id, self.state, new)
        self.state = new

    def metadata(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "sandbox_id": self.sandbox_id, "config": pb_to_dict(self.config),
            "created_at": self.created_at, "image_ref": self.image_ref, "image_id": self.image_id,
            "image_repo_tag": self.image_repo_tag, "image_repo_digest": self.image_repo_digest,
            "log_path": self.log_path, "runtime_name": self.runtime_name, "stop_signal": self.stop_signal,
            "user": self.user,
        }

    def status(self) -> dict[str, Any]:
        return {"state": self.state.value, "pid": self.pid, "started_at": self.started_at,
                "finished_at": self.finished_at, "exit_code": self.exit_code, "reason": self.reason,
                "message": self.message, "stdout_path": self.stdout_path, "stderr_path": self.stderr_path,
                "resources": pb_to_dict(self.resources)}

    @classmethod
    def from_metadata(cls, meta: dict[str, Any], status: dict[str, Any] | None) -> Container:
        c = cls(id=meta["id"], name=meta["name"], sandbox_id=meta["sandbox_id"],
                config=pb_from_dict(cri.ContainerConfig, meta.get("config")), created_at=int(meta["created_at"]),
                image_ref=meta.get("image_ref", ""), image_id=meta.get("image_id", ""),
                image_repo_tag=meta.get("image_repo_tag", ""), image_repo_digest=meta.get("image_repo_digest", ""),
                log_path=meta.get("log_path", ""), runtime_name=meta.get("runtime_name", ""),
                stop_signal=meta.get("stop_signal", "SIGTERM"), user=dict(meta.get("user") or {}))
        status = status or {}
        c.state = ContainerState(status.get("state", ContainerState.UNKNOWN.value))
        c.pid = int(status.get("pid", 0))
        c.started_at = int(status.get("started_at", 0))
        c.finished_at = int(status.get("finished_at", 0))
        c.exit_code = int(status.get("exit_code", 0))
        c.reason = status.get("reason", "")
        c.message = status.get("message", "")
        c.stdout_path = status.get("stdout_path", "")
        c.stderr_path = status.get("stderr_path", "")
        c.resources = pb_from_dict(cri.LinuxContainerResources, status.get("resources"))
        if c.state in (ContainerState.EXITED, ContainerState.REMOVED):
            c.exited.set()
        return c


T = TypeVar("T", Sandbox, Container)


class NameIndex:
    """Names reserved for ids (containerd's ``registrar``)."""

    def __init__(self) -> None:
        self._owner: dict[str, str] = {}

    def reserve(self, kind: str, name: str, obj_id: str) -> None:
        """Raises :class:`AlreadyExists` naming the id that holds ``name``."""
        owner = self._owner.get(name)
        if owner is not None and owner != obj_id:
            raise AlreadyExists(f"failed to reserve {kind} name {quote(name)}: name {quote(name)} is "
                                f"reserved for {quote(owner)}")
        self._owner[name] = obj_id

    def release(self, name: str, obj_id: str | None = None) -> None:
        if obj_id is None or self._owner.get(name) == obj_id:
            self._owner.pop(name, None)

    def owner(self, name: str) -> str | None:
        return self._owner.get(name)


class Store(Generic[T]):
    """Objects of one kind by id, with unique-prefix lookup and a name index."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._by_id: dict[str, T] = {}
        self.names = NameIndex()

    def add(self, obj: T) -> None:
        if obj.id in self._by_id:
            raise AlreadyExists(f"{self.kind} {quote(obj.id)}")
        self._by_id[obj.id] = obj

    def resolve(self, id_or_prefix: str) -> str | None:
        """The full id for ``id_or_prefix``; None when nothing matches.

        Raises :class:`InvalidArgument` when the prefix matches several ids."""
        if not id_or_prefix:
            return None
        if id_or_prefix in self._by_id:
            return id_or_prefix
        hits = [i for i in self._by_id if i.startswith(id_or_prefix)]
        if len(hits) > 1:
            raise InvalidArgument(f"{self.kind} id prefix {quote(id_or_prefix)} is ambiguous")
        return hits[0] if hits else None

    def find(self, id_or_prefix: str) -> T | None:
        full = self.resolve(id_or_prefix)
        return self._by_id.get(full) if full else None

    def get(self, id_or_prefix: str) -> T:
        """Raises :class:`NotFound` (``an error occurred when try to find sandbox "x"``)."""
        obj = self.find(id_or_prefix)
        if obj is None:
            raise NotFound(f"an error occurred when try to find {self.kind} {quote(id_or_prefix)}")
        return obj

    def delete(self, obj_id: str) -> None:
        self._by_id.pop(obj_id, None)

    def list(self, predicate: Callable[[T], bool] | None = None) -> list[T]:
        objs = sorted(self._by_id.values(), key=lambda o: (o.created_at, o.id))
        return [o for o in objs if predicate is None or predicate(o)]

    def __iter__(self) -> Iterator[T]:
        return iter(list(self._by_id.values()))

    def __len__(self) -> int:
        return len(self._by_id)
