"""Recovery, once, at plugin init: the sandboxes and containers of a previous run rebuilt
from their ``k8s.io`` container records (metadata extension, spec) and status files, each
matched with its task's state:

- task running (or paused): READY / RUNNING again, exit watched, log copying resumed;
- task stopped while the object ran (it ended while the daemon was away): its exit handled
  now, as if it had just been seen;
- no task, or one that never started: the leftover task removed; an object that ran is
  NOTREADY / EXITED (exit code 255, reason ``Unknown``: the code was lost with its shim);
- the shim does not answer: an object that ran is UNKNOWN.

Sandboxes come first (containers look their pod up). Directories no record knows (a crash
mid-create) are removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errdefs import ContainerdError, NotFound
from ..log import get_logger
from ..records.containers import Container as ContainerRecord
from ..mount import unmount_all
from . import image_volume
from .logs import ContainerIO
from .state import ContainerState, SandboxState
from .store import (
    CONTAINER_METADATA_EXT,
    KIND_CONTAINER,
    KIND_LABEL,
    KIND_SANDBOX,
    SANDBOX_METADATA_EXT,
    Container,
    Sandbox,
    read_json,
)
from .util import now_ns

if TYPE_CHECKING:
    from .exits import ExitMonitor
    from .host import CRIHost

log = get_logger("cri")

EXIT_CODE_UNKNOWN = 255
LIVE_TASK = ("running", "paused", "pausing")


@dataclass(frozen=True)
class _Kind:
    """What differs between recovering a sandbox and a container."""

    label: str
    ext: str
    cls: type
    ran: tuple[Any, ...]        # states in which the task should be there
    running: Any
    unknown: Any


_SANDBOX = _Kind(KIND_SANDBOX, SANDBOX_METADATA_EXT, Sandbox, (SandboxState.INIT, SandboxState.READY,
                                                                SandboxState.UNKNOWN),
                 SandboxState.READY, SandboxState.UNKNOWN)
_CONTAINER = _Kind(KIND_CONTAINER, CONTAINER_METADATA_EXT, Container, (ContainerState.RUNNING, ContainerState.UNKNOWN),
                   ContainerState.RUNNING, ContainerState.UNKNOWN)


async def recover(svc: CRIHost, exits: ExitMonitor) -> None:
    """Rebuild the stores from the ``k8s.io`` container records and status files; tasks
    still running are watched by ``exits``, those that ended meanwhile handled by it."""
    records = await svc.daemon.list_containers(f'labels."{KIND_LABEL}"')
    for kind in (_SANDBOX, _CONTAINER):
        for rec in records:
            if rec.labels.get(KIND_LABEL) != kind.label:
                continue
            try:
                await _recover(svc, exits, rec, kind)
            except Exception as exc:  # one broken record must not hide the others
                log.error("cannot recover", kind=kind.label, id=rec.id, error=str(exc))
    _cleanup_orphan_dirs(svc)
    if records:
        log.info("cri recovered", sandboxes=len(svc.sandboxes), containers=len(svc.containers))


async def _recover(svc: CRIHost, exits: ExitMonitor, rec: ContainerRecord, kind: _Kind) -> None:
    ext = rec.extensions.get(kind.ext)
    is_sandbox = kind is _SANDBOX
    store = svc.sandboxes if is_sandbox else svc.containers
    if ext is None or store.find(rec.id) is not None:
        return
    root = svc.sandbox_root(rec.id) if is_sandbox else svc.container_root(rec.id)
    obj = kind.cls.from_metadata(json.loads(ext.value), read_json(os.path.join(root, "status.json")))
    if rec.spec is not None:
        with contextlib.suppress(ValueError):
            obj.spec = json.loads(rec.spec.value)
    ran = obj.state in kind.ran
    st = None
    unreachable = False
    try:
        st = await svc.daemon.task_state(obj.id)
    except NotFound:
        pass
    except ContainerdError:
        unreachable = True
    store.add(obj)
    store.names.reserve(kind.label, obj.name, obj.id)
    if unreachable:
        if ran:
            obj.state = kind.unknown            # its shim does not answer
    elif st is not None and st.status in LIVE_TASK:
        obj.state = kind.running
        obj.pid = st.pid
        if not is_sandbox:
            _reattach_io(svc, obj)
        exits.watch(obj)
    elif st is not None and st.status == "stopped" and ran:   # ended while we were away
        if is_sandbox:
            await exits.handle_sandbox_exit(obj, st.exit_status, st.exited_at_ns)
        else:
            await exits.handle_container_exit(obj, st.exit_status, st.exited_at_ns)
        return
    else:
        if st is not None:          # created but never started, or stopped and handled
            with contextlib.suppress(ContainerdError):
                if st.status == "created":
                    await svc.daemon.kill(obj.id, 9)
                await svc.daemon.delete_task(obj.id)
        if ran:                     # the task is gone with its shim: exit code unknown
            obj.pid = 0
            if is_sandbox:
                obj.state = SandboxState.NOTREADY
            else:
                obj.state = ContainerState.EXITED
                obj.exit_code = EXIT_CODE_UNKNOWN
                obj.reason = "Unknown"
                obj.finished_at = obj.finished_at or now_ns()
        if obj.state in (SandboxState.NOTREADY, ContainerState.EXITED):
            obj.exited.set()
    with contextlib.suppress(OSError):
        svc.save(obj)


def _reattach_io(svc: CRIHost, c: Container) -> None:
    if not c.stdout_path:
        return
    io = ContainerIO(os.path.dirname(c.stdout_path), tty=c.config.tty, log_path=c.log_path,
                     max_line=svc.config.max_container_log_line_size)
    try:
        io.start()
        c.io = io
    except OSError as exc:
        log.warning("cannot reattach container output", id=c.id, error=str(exc))


def _cleanup_orphan_dirs(svc: CRIHost) -> None:
    """Directories of objects no record knows (a crash mid-create)."""
    for kind, store in (("sandboxes", svc.sandboxes), ("containers", svc.containers)):
        for base in (svc.root, svc.state):
            d = os.path.join(base, kind)
            try:
                names = os.listdir(d)
            except FileNotFoundError:
                continue
            for n in names:
                if store.find(n) is None and len(n) == 64:
                    path = os.path.join(d, n)
                    shm = os.path.join(path, "shm")
                    with contextlib.suppress(OSError):
                        unmount_all(shm)
                    image_volume.unmount_orphan(path)
                    shutil.rmtree(path, ignore_errors=True)
