"""The runtime: task bundles, shims and tasks (containerd's ``runtime/v2``), no gRPC.

- :mod:`.bundle` — ``<state>/io.containerd.runtime.v2.task/<ns>/<id>/`` on disk;
- :mod:`.shim_manager` — the shim binary contract (``start``/``delete``) and ttrpc connections;
- :mod:`.zygote` — the pre-imported shim zygote our own shims are forked from;
- :mod:`.task` — :class:`~.task.TaskManager` and :class:`~.task.ShimTask`, the async API the
  Tasks service is built on.
"""
