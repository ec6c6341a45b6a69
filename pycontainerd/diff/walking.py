"""The walking differ (``io.containerd.differ.v1.walking``), containerd's default.

Apply (containerd ``diff/apply``): the layer blob is read from the namespace's content
store and streamed through :func:`pycontainerd.archive.apply.apply_layer` onto the target
the mounts describe:

* one ``overlay`` mount with an ``upperdir`` (an active overlayfs snapshot): straight into
  the upper dir, whiteouts written the overlayfs way, the lower dirs consulted as parents;
* one ``bind`` mount (a snapshot without parents, or the native snapshotter): straight into
  its source directory, whiteouts as removals;
* anything else: the mounts are mounted on a temporary directory, applied, unmounted.

Compare (containerd ``diff/walking``): both mount sets are mounted read-only on temporary
directories, :func:`pycontainerd.archive.diff.write_diff` writes the layer (gzip unless
another media type is asked for) to a temporary file, which is then committed to the
content store with the ``containerd.io/uncompressed`` label.

All tree work runs in a worker thread; mounts are always undone.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from ..descriptor import Descriptor
from ..errdefs import AlreadyExists, FailedPrecondition, ResourceExhausted
from ..imagespec import LABEL_UNCOMPRESSED
from ..log import get_logger
from ..metadata.content import ContentStore
from ..mount import Mount, mount_all, unmount_all

log = get_logger("diff")

MEDIA_TYPE_LAYER = "application/vnd.oci.image.layer.v1.tar"
MEDIA_TYPE_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


@contextlib.contextmanager
def _emptied_when_full(target: str) -> Iterator[None]:
    """When an apply onto the empty directory ``target`` (an unpack's fresh snapshot) runs
    out of space, empty it again before raising: the half-applied layer is useless, and
    removing the snapshot needs room for a metadata commit, which the disk no longer has
    while the partial layer fills it. A directory that had content is left as it is."""
    was_empty = not os.listdir(target)
    try:
        yield
    except ResourceExhausted:
        if was_empty:
            for entry in os.scandir(target):
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)
        raise


def _option(m: Mount, name: str) -> str | None:
    for opt in m.options:
        key, sep, value = opt.partition("=")
        if sep and key == name:
            return value
    return None


@contextlib.contextmanager
def _mounted(mounts: Sequence[Mount], base: Path, readonly: bool) -> Iterator[str]:
    """Mount ``mounts`` on a fresh temporary directory under ``base``; always unmounted."""
    base.mkdir(parents=True, exist_ok=True)
    target = tempfile.mkdtemp(prefix="mount-", dir=base)
    try:
        if readonly:
            mounts = [Mount(m.type, m.source, tuple(o for o in m.options if o != "rw") + ("ro",), m.target)
                      for m in mounts]
        mount_all(mounts, target)
        try:
            yield target
        finally:
            unmount_all(target)
    finally:
        os.rmdir(target)


def cleanup_temp_mounts(base: Path) -> None:
    """Unmount and remove the ``mount-*`` directories under ``base`` that a daemon killed
    in the middle of an apply or compare left mounted (containerd's
    ``mount.CleanupTempMounts`` at start-up). Failures are logged."""
    try:
        names = sorted(n for n in os.listdir(base) if n.startswith("mount-"))
    except FileNotFoundError:
        return
    for name in names:
        path = os.path.join(base, name)
        try:
            unmount_all(path)
            os.rmdir(path)
            log.info("removed temporary mount left by a crash", path=path)
        except OSError as exc:
            log.warning("failed to clean up temporary mount", path=path, error=str(exc))


class WalkingDiffer:
    """Apply and Compare over the namespaced content store.

    Args:
        content: the namespaced content store (reads layers, receives diffs).
        tmp: a directory for temporary mount points and diff files.
    """

    def __init__(self, content: ContentStore, tmp: Path) -> None:
        self.content = content
        self.tmp = Path(tmp)
        cleanup_temp_mounts(self.tmp)

    async def apply(self, layer: Descriptor, mounts: Sequence[Mount]) -> Descriptor:
        """Apply ``layer`` onto ``mounts``; return the applied (uncompressed) descriptor.

        Raises:
            NotFound: the layer is not in this namespace's content store.
            InvalidArgument: unsupported media type, corrupt data, or a hostile entry.
            FailedPrecondition: the mounts are read-only.
        """
        info = await self.content.info(layer.digest)
        blob = self.content.local.blob_path(info.digest)
        result = await asyncio.to_thread(self._apply_sync, blob, layer.media_type, list(mounts))
        log.debug("applied layer", digest=layer.digest, diff_id=result.diff_id, size=result.size)
        return Descriptor(MEDIA_TYPE_LAYER, result.diff_id, result.size)

    def _apply_sync(self, blob: Path, media_type: str, mounts: list[Mount]):
        from ..archive.apply import apply_layer  # tar, compressors: loaded by the first layer, not at boot

        with open(blob, "rb") as stream:
            if len(mounts) == 1 and mounts[0].type == "overlay" and _option(mounts[0], "upperdir"):
                m = mounts[0]
                lowers = (_option(m, "lowerdir") or "").split(":")
                with _emptied_when_full(_option(m, "upperdir")):
                    return apply_layer(stream, _option(m, "upperdir"), overlay_whiteouts=True,
                                       media_type=media_type, parents=[p for p in lowers if p],
                                       userxattr="userxattr" in m.options)
            if len(mounts) == 1 and mounts[0].type == "bind":
                if "ro" in mounts[0].options:
                    raise FailedPrecondition("cannot apply a layer onto a read-only mount")
                with _emptied_when_full(mounts[0].source):
                    return apply_layer(stream, mounts[0].source, overlay_whiteouts=False, media_type=media_type)
            with _mounted(mounts, self.tmp, readonly=False) as root:
                return apply_layer(stream, root, overlay_whiteouts=False, media_type=media_type)

    async def compare(self, lower: Sequence[Mount], upper: Sequence[Mount], media_type: str = "",
                      ref: str = "", labels: Mapping[str, str] | None = None) -> Descriptor:
        """The layer from ``lower`` to ``upper``, committed to the content store.

        ``media_type`` defaults to OCI tar+gzip; ``ref`` to a random ingest ref. Raises
        :class:`InvalidArgument` for an unsupported media type."""
        media_type = media_type or MEDIA_TYPE_LAYER_GZIP
        self.tmp.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=self.tmp) as out:
            result = await asyncio.to_thread(self._compare_sync, list(lower), list(upper), media_type, out)
            out.seek(0)
            commit_labels = dict(labels or {})
            commit_labels[LABEL_UNCOMPRESSED] = result.diff_id
            try:  # the same diff may be here already (held by the lease now): that is success
                writer = await self.content.writer(ref or f"diff-{secrets.token_hex(8)}", result.size, result.digest)
                try:
                    while chunk := await asyncio.to_thread(out.read, 1 << 20):
                        await writer.write(chunk)
                    await writer.commit(result.size, result.digest, commit_labels)
                finally:
                    await writer.close()
            except AlreadyExists:
                await self.content.update(result.digest, commit_labels,
                                          [f"labels.{k}" for k in commit_labels])
        return Descriptor(media_type, result.digest, result.size)

    def _compare_sync(self, lower: list[Mount], upper: list[Mount], media_type: str, out):
        from ..archive.diff import write_diff  # as apply_layer above

        with contextlib.ExitStack() as stack:
            lower_root = stack.enter_context(_mounted(lower, self.tmp, readonly=True)) if lower else ""
            upper_root = stack.enter_context(_mounted(upper, self.tmp, readonly=True))
            return write_diff(lower_root, upper_root, out, media_type)
