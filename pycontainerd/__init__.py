"""pycontainerd: a container runtime daemon in Python, wire-compatible with containerd.

The core packages (content, metadata, snapshots, diff, runtime, events, …) import no gRPC;
:mod:`pycontainerd.services` is the thin gRPC layer over them, :mod:`pycontainerd.server` the
daemon that serves it, and :mod:`pycontainerd.api`
holds the Python generated from the ``.proto`` files under ``api/``.
"""

__version__ = "0.1.0"
