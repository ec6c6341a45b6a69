"""Task bundles on disk (containerd's ``runtime/v2/bundle.go``).

::

    <state>/io.containerd.runtime.v2.task/<namespace>/<id>/   the bundle (mode 0700; 0710 and
                                                            group-owned by the remapped root's
                                                            gid when the spec maps user ids)
        config.json        the OCI runtime spec, as the client sent it
        rootfs/            mount point of the task's rootfs (mounted by the shim)
        work -> <root>/io.containerd.runtime.v2.task/<ns>/<id>   (a plain dir without --root)
        address            the shim's ttrpc address (``unix:///…``), written by ``shim start``
        shim-binary-path   the shim command used, for reloading after a daemon restart
        init.pid, log.json, options.json, runtime, shim.log   written by the shim and runc

A bundle is created whole or not at all, and deleted atomically (renamed to ``.<id>``
first, so a half-deleted bundle is never loaded as a task). :meth:`Bundle.detach` is the
fast form the task manager uses: one rename each moves the bundle and its work dir into
``<state or root>/io.containerd.runtime.v2.task/.trash/`` (same file system, so atomic),
and the slow removal of their files runs later, off the caller's path; what a crash left
in ``.trash`` is removed by :func:`empty_trash` at the next start.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass

from .. import identifiers
from ..errdefs import AlreadyExists, FailedPrecondition, NotFound, quote

STATE_DIR = "io.containerd.runtime.v2.task"
TRASH = ".trash"
CONFIG = "config.json"
ADDRESS = "address"
SHIM_BINARY_PATH = "shim-binary-path"


@dataclass(frozen=True)
class Bundle:
    id: str
    namespace: str
    path: str

    @property
    def rootfs(self) -> str:
        return os.path.join(self.path, "rootfs")

    @property
    def config(self) -> str:
        return os.path.join(self.path, CONFIG)

    @classmethod
    def create(cls, state: str, namespace: str, id: str, spec: bytes, root: str | None = None) -> Bundle:
        """Lay out a new bundle under ``state`` (the daemon's ``--state``).

        With ``root`` (the daemon's ``--root``) the work dir lives there and ``work`` is a
        symlink to it, as in containerd. Raises :class:`InvalidArgument` for a bad id or
        namespace and :class:`AlreadyExists` when the bundle exists.
        """
        identifiers.validate(namespace)
        identifiers.validate(id)
        path = os.path.join(state, STATE_DIR, namespace, id)
        os.makedirs(os.path.dirname(path), mode=0o711, exist_ok=True)
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            raise AlreadyExists(f"bundle for task {quote(id)} in namespace {quote(namespace)}") from None
        b = cls(id, namespace, path)
        work = None
        try:
            _open_to_remapped_root(path, spec)
            os.mkdir(b.rootfs, 0o711)
            if root is not None:
                work = os.path.join(root, STATE_DIR, namespace, id)
                os.makedirs(os.path.dirname(work), mode=0o711, exist_ok=True)
                shutil.rmtree(work, ignore_errors=True)
                os.mkdir(work, 0o711)
                os.symlink(work, os.path.join(path, "work"))
            else:
                os.mkdir(os.path.join(path, "work"), 0o711)
            with open(b.config, "wb") as f:
                f.write(spec)
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            if work is not None:
                shutil.rmtree(work, ignore_errors=True)
            raise
        return b

    @classmethod
    def load(cls, state: str, namespace: str, id: str) -> Bundle:
        path = os.path.join(state, STATE_DIR, namespace, id)
        if not os.path.isdir(path):
            raise NotFound(f"bundle for task {quote(id)} in namespace {quote(namespace)}")
        return cls(id, namespace, path)

    @staticmethod
    def list(state: str) -> list[tuple[str, str]]:
        """``(namespace, id)`` of every bundle under ``state`` (hidden entries skipped)."""
        base = os.path.join(state, STATE_DIR)
        out = []
        try:
            namespaces = sorted(os.listdir(base))
        except FileNotFoundError:
            return []
        for ns in namespaces:
            if ns.startswith(".") or not os.path.isdir(os.path.join(base, ns)):
                continue
            for id in sorted(os.listdir(os.path.join(base, ns))):
                if not id.startswith(".") and os.path.isdir(os.path.join(base, ns, id)):
                    out.append((ns, id))
        return out

    def read(self, name: str) -> str | None:
        try:
            with open(os.path.join(self.path, name)) as f:
                return f.read().strip()
        except FileNotFoundError:
            return None

    def write(self, name: str, data: str) -> None:
        tmp = os.path.join(self.path, f".{name}")
        with open(tmp, "w") as f:
            f.write(data)
        os.rename(tmp, os.path.join(self.path, name))

    @property
    def address(self) -> str | None:
        return self.read(ADDRESS)

    def delete(self) -> None:
        """Unmount the rootfs if still mounted, then remove the bundle and its work dir.

        Raises :class:`FailedPrecondition` when the rootfs cannot be unmounted (nothing
        is removed then: a mounted rootfs must never be deleted through).
        """
        work = self._unmount()
        _atomic_delete(self.path)
        if work is not None:
            _atomic_delete(work)

    def detach(self) -> list[str]:
        """:meth:`delete` in two steps, the first one fast: unmount the rootfs, then move the
        bundle and its work dir into ``.trash`` (one rename each), so that the task's id is
        free at once. Returns the moved paths, for :func:`remove_paths` later. Falls back
        to removing a path at once when it cannot be renamed there.

        Raises :class:`FailedPrecondition` as :meth:`delete`.
        """
        work = self._unmount()
        moved = []
        for path in (self.path, work):
            if path is None:
                continue
            try:
                dest = _move_to_trash(path, f"{self.namespace}.{self.id}")
            except OSError:
                _atomic_delete(path)
                continue
            if dest is not None:
                moved.append(dest)
        return moved

    def _unmount(self) -> str | None:
        """Unmount the rootfs; the work dir the ``work`` link points to (or None)."""
        work = None
        try:
            link = os.path.join(self.path, "work")
            if os.path.islink(link):
                work = os.readlink(link)
        except OSError:
            pass
        if os.path.isdir(self.rootfs):
            from .. import mount

            try:
                mount.unmount_all(self.rootfs)
            except OSError as exc:
                raise FailedPrecondition(f"unmount rootfs {self.rootfs}: {exc}") from exc
        return work


def remapped_root_gid(spec: bytes) -> int | None:
    """The host gid of the container's gid 0 when the spec has user-namespace mappings
    (``linux.uidMappings``), else None (also for a spec that is not JSON: runc says why)."""
    try:
        linux = json.loads(spec).get("linux") or {}
        if not linux.get("uidMappings"):
            return None
        for m in linux.get("gidMappings") or ():
            start, size = int(m.get("containerID", 0)), int(m.get("size", 0))
            if start <= 0 < start + size:
                return int(m.get("hostID", 0)) - start
    except (ValueError, TypeError, AttributeError):
        return None
    return None


def _open_to_remapped_root(path: str, spec: bytes) -> None:
    """containerd's ``prepareBundleDirectoryPermissions``: with user-namespace mappings the
    container's root (a host uid without rights here) must reach ``rootfs`` in the bundle,
    so the bundle becomes 0710, group-owned by the remapped root's gid."""
    gid = remapped_root_gid(spec)
    if gid is None:
        return
    os.chown(path, -1, gid)
    os.chmod(path, 0o710)


def remove_paths(paths: list[str]) -> None:
    """Remove what :meth:`Bundle.detach` moved aside (errors ignored: :func:`empty_trash`
    retries at the next start)."""
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)


def empty_trash(*bases: str | None) -> None:
    """Remove ``<base>/io.containerd.runtime.v2.task/.trash`` of each base (``--state``,
    ``--root``): bundles a crash left half deleted."""
    for base in bases:
        if base is not None:
            shutil.rmtree(os.path.join(base, STATE_DIR, TRASH), ignore_errors=True)


def _move_to_trash(path: str, name: str) -> str | None:
    """Rename ``<base>/<STATE_DIR>/<ns>/<id>`` to ``<base>/<STATE_DIR>/.trash/<name>.<random>``;
    the new path, or None when ``path`` does not exist. Raises OSError."""
    trash = os.path.join(os.path.dirname(os.path.dirname(path)), TRASH)
    os.makedirs(trash, mode=0o700, exist_ok=True)
    dest = os.path.join(trash, f"{name}.{os.urandom(6).hex()}")
    try:
        os.rename(path, dest)
    except FileNotFoundError:
        return None
    return dest


def _atomic_delete(path: str) -> None:
    hidden = os.path.join(os.path.dirname(path), "." + os.path.basename(path))
    if os.path.lexists(hidden):  # left by an interrupted delete
        shutil.rmtree(hidden, ignore_errors=True)
    try:
        os.rename(path, hidden)
    except FileNotFoundError:
        return
    shutil.rmtree(hidden, ignore_errors=True)
