"""Small helpers of the CRI plugin: ids and names, signals, host capabilities, mount
propagation, cgroup paths."""

from __future__ import annotations

import contextlib
import inspect
import os
import posixpath
import secrets
import signal as signal_mod
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..api.cri.runtime.v1 import api_pb2 as cri
from ..errdefs import InvalidArgument, quote
from ..log import get_logger

log = get_logger("cri")

CAP_SYS_RESOURCE = 24

# the files every pod gets its own copy of (service.py makes them, spec.py mounts them)
DEV_SHM = "/dev/shm"
ETC_HOSTS = "/etc/hosts"
ETC_HOSTNAME = "/etc/hostname"
RESOLV_CONF = "/etc/resolv.conf"


def new_id() -> str:
    """A random 64-hex id, as containerd's CRI makes them."""
    return secrets.token_hex(32)


def now_ns() -> int:
    return time.time_ns()


def sandbox_name(meta: cri.PodSandboxMetadata) -> str:
    """``<name>_<namespace>_<uid>_<attempt>`` (containerd's ``makeSandboxName``)."""
    return "_".join([meta.name, meta.namespace, meta.uid, str(meta.attempt)])


def container_name(meta: cri.ContainerMetadata, sandbox_meta: cri.PodSandboxMetadata) -> str:
    """``<name>_<sandbox name>_<sandbox namespace>_<sandbox uid>_<attempt>``."""
    return "_".join([meta.name, sandbox_meta.name, sandbox_meta.namespace, sandbox_meta.uid, str(meta.attempt)])


def parse_signal(value: str | int | None, default: int = signal_mod.SIGTERM) -> int:
    """A signal number from ``SIGTERM``/``TERM``/``15`` (an image's ``StopSignal``)."""
    if value is None or value == "":
        return int(default)
    if isinstance(value, int):
        return value
    s = value.strip().upper()
    if s.isdigit():
        return int(s)
    if not s.startswith("SIG"):
        s = "SIG" + s
    if s.startswith("SIGRTMIN+"):
        return int(signal_mod.SIGRTMIN) + int(s[len("SIGRTMIN+"):])
    if s.startswith("SIGRTMAX-"):
        return int(signal_mod.SIGRTMAX) - int(s[len("SIGRTMAX-"):])
    try:
        return int(signal_mod.Signals[s])
    except KeyError:
        raise InvalidArgument(f"invalid signal {quote(value)}") from None


_SIGNAL_ALIASES = {"SIGCLD": "SIGCHLD", "SIGIOT": "SIGABRT", "SIGPOLL": "SIGIO"}


def cri_signal_name(value: int) -> str | None:
    """The signal name for a CRI ``Signal`` enum value (``RUNTIME_DEFAULT`` → None)."""
    if value == cri.RUNTIME_DEFAULT:
        return None
    name = cri.Signal.Name(value)
    if name.startswith("SIGRTMINPLUS"):
        return f"SIGRTMIN+{name[len('SIGRTMINPLUS'):]}"
    if name.startswith("SIGRTMAXMINUS"):
        return f"SIGRTMAX-{name[len('SIGRTMAXMINUS'):]}"
    return _SIGNAL_ALIASES.get(name, name)


def cri_signal_value(name: str) -> int:
    """The CRI ``Signal`` enum value for a signal name (unknown → ``RUNTIME_DEFAULT``)."""
    n = name.upper()
    if not n.startswith("SIG"):
        n = "SIG" + n
    n = n.replace("SIGRTMIN+", "SIGRTMINPLUS").replace("SIGRTMAX-", "SIGRTMAXMINUS")
    try:
        return cri.Signal.Value(n)
    except ValueError:
        return cri.RUNTIME_DEFAULT


def effective_capabilities(status: str = "/proc/self/status") -> int:
    try:
        with open(status, encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return int(line.split(":", 1)[1].strip(), 16)
    except OSError:
        pass
    return 0


def process_identity(pid: int) -> dict[str, object] | None:
    """The real uid, gid and supplementary groups of process ``pid`` (``Uid:``, ``Gid:`` and
    ``Groups:`` of ``/proc/<pid>/status``) in the shape of ``Container.user``; None once it
    is gone."""
    fields: dict[str, list[int]] = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("Uid", "Gid", "Groups"):
                    fields[key] = [int(v) for v in value.split()]
    except (OSError, ValueError):
        return None
    if not fields.get("Uid") or not fields.get("Gid"):
        return None
    return {"uid": fields["Uid"][0], "gid": fields["Gid"][0], "additional_gids": fields.get("Groups", [])}


def can_lower_oom_score_adj(status: str = "/proc/self/status") -> bool:
    """False on hosts where this process lacks ``CAP_SYS_RESOURCE`` (then neither it nor
    runc may hand out a score below the daemon's own)."""
    return bool(effective_capabilities(status) >> CAP_SYS_RESOURCE & 1)


def current_oom_score_adj() -> int:
    try:
        with open("/proc/self/oom_score_adj", encoding="ascii") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 0


def clamp_oom_score_adj(score: int, restrict: bool, current: int | None = None) -> int:
    """``score``, raised to the daemon's own score when ``restrict`` (containerd's
    ``restrictOOMScoreAdj``)."""
    if not restrict:
        return score
    cur = current_oom_score_adj() if current is None else current
    return max(score, cur)


def cgroups_path(parent: str, obj_id: str) -> str:
    """``<parent>/<id>`` for the cgroupfs driver. A systemd slice parent is refused."""
    if not parent:
        return ""
    if parent.endswith(".slice"):
        raise InvalidArgument(f"cgroup parent {quote(parent)} is a systemd slice: the systemd cgroup driver "
                              "is not supported, use the cgroupfs driver")
    return posixpath.join(parent, obj_id)


@dataclass(frozen=True)
class MountInfo:
    mount_point: str
    optional: tuple[str, ...]   # shared:N, master:N, ...

    @property
    def shared(self) -> bool:
        return any(o.startswith("shared:") for o in self.optional)

    @property
    def slave(self) -> bool:
        return any(o.startswith("master:") for o in self.optional)


def mount_of(path: str, mountinfo: str = "/proc/self/mountinfo") -> MountInfo:
    """The mount holding ``path`` (the longest mount point that is a prefix of it)."""
    real = os.path.realpath(path)
    best = MountInfo("/", ())
    with open(mountinfo) as f:
        for line in f:
            fields = line.split()
            try:
                sep = fields.index("-")
            except ValueError:
                continue
            mp = fields[4].encode().decode("unicode_escape")
            if (real == mp or real.startswith(mp.rstrip("/") + "/")) and len(mp) >= len(best.mount_point):
                best = MountInfo(mp, tuple(fields[6:sep]))
    return best


def swap_controller_available() -> bool:
    return (os.path.exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
            or os.path.exists("/sys/fs/cgroup/memory.swap.max")
            or any(os.path.exists(os.path.join("/sys/fs/cgroup", d, "memory.swap.max"))
                   for d in ("unified", "kubepods")))


def hugetlb_controller_available() -> bool:
    if os.path.isdir("/sys/fs/cgroup/hugetlb"):
        return True
    try:
        with open("/sys/fs/cgroup/cgroup.controllers") as f:
            return "hugetlb" in f.read().split()
    except OSError:
        return False


def labels_for(kind: str, *sources: Mapping[str, str]) -> dict[str, str]:
    """Container record labels: ``sources`` merged (later wins) plus the CRI kind."""
    out: dict[str, str] = {}
    for s in sources:
        out.update(s)
    out["io.cri-containerd.kind"] = kind
    return out


@contextlib.asynccontextmanager
async def creating(store, name: str, obj_id: str) -> AsyncIterator[contextlib.AsyncExitStack]:
    """The undo list of creating ``obj_id`` (its ``name`` reserved in ``store``): steps
    pushed with :func:`undo_on_failure` run in reverse when the block fails, and then the
    object leaves ``store`` and its name is released; a block that succeeds keeps it all."""
    try:
        async with contextlib.AsyncExitStack() as undo:
            yield undo
            undo.pop_all()
    except BaseException as exc:
        log.info("create failed, undone", kind=store.kind, id=obj_id, error=str(exc))
        store.delete(obj_id)
        store.names.release(name, obj_id)
        raise


def undo_on_failure(stack: contextlib.AsyncExitStack, step: Callable[..., Any], *args: Any, obj_id: str) -> None:
    """Push ``step(*args)`` (sync or async) on ``stack``, the undo list of a create that
    :meth:`~contextlib.AsyncExitStack.pop_all` keeps when it succeeds: when the create fails,
    the steps run in reverse, and one that fails is logged and the others still run."""
    async def run() -> None:
        try:
            result = step(*args)
            if inspect.isawaitable(result):
                await result
        except Exception as err:  # keep undoing
            log.warning("undo step failed", id=obj_id, error=str(err))
    stack.push_async_callback(run)
