"""pycontainerd: a container runtime daemon in Python, wire-compatible with containerd.

Layers, top to bottom (DESIGN §2; ``tests/unit/test_layering.py`` keeps imports running down):
:mod:`pycontainerd.server` (the daemon: plugins, sockets, interceptor, debug/metrics) and,
beside each other, :mod:`pycontainerd.services` (thin gRPC servicers), :mod:`pycontainerd.cri`
(Kubernetes' CRI on the in-process services) and :mod:`pycontainerd.client` (the client
library, :mod:`pycontainerd.cli` on it); then :mod:`pycontainerd.wire` (protobuf ⇄ records,
errors ⇄ status codes); the runtime (:mod:`pycontainerd.tasks`, :mod:`pycontainerd.runtime`);
the core, which imports no gRPC (:mod:`pycontainerd.records`, :mod:`pycontainerd.metadata`,
content, snapshots, archive, diff, remotes, events, oci, gc); and at the bottom
:mod:`pycontainerd.sysutil` (standard library only, shared with the per-task
:mod:`pycontainerd.shim`). :mod:`pycontainerd.api` holds the Python generated from the
``.proto`` files under ``api/``.
"""

__version__ = "0.1.0"
