"""OCI layer archives: applying a layer onto a directory and writing the diff of two.

- :mod:`.compression` — layer media types, gzip/zstd detection, streaming (de)compressors.
- :mod:`.apply` — :func:`apply_layer`: stream a (compressed) layer onto a directory,
  contained inside it, with OCI whiteouts as overlayfs or plain deletions; returns the diffID.
- :mod:`.diff` — :func:`write_diff`: the OCI layer tar of the changes between two trees
  (double walk), or of an overlayfs upper dir alone (single walk).

No gRPC here: the diff service wraps these.
"""

from pycontainerd.archive.apply import ApplyResult, apply_layer
from pycontainerd.archive.compression import (
    Compression,
    detect_compression,
    diff_compression,
)
from pycontainerd.archive.diff import DiffResult, write_diff

__all__ = [
    "ApplyResult",
    "Compression",
    "DiffResult",
    "apply_layer",
    "detect_compression",
    "diff_compression",
    "write_diff",
]
