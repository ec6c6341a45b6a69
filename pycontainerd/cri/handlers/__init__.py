"""The CRI handlers, one module per CRI call (containerd's ``internal/cri/server`` layout):
each defines ``async def <call>(svc: CRIService, request) -> response`` on the ``runtime.v1``
messages and raises :mod:`pycontainerd.errdefs` errors, which the gRPC layer
(:mod:`pycontainerd.cri.servicer`) turns into status codes.

Each module is imported with the first call that needs it (``handlers.sandbox_run`` is an
attribute of this package that imports the module): spec generation, OCI options and the
streaming requests are not loaded by a daemon that serves no CRI call."""

from ...lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {}, submodules=(
    "container_attach", "container_create", "container_events", "container_exec", "container_execsync",
    "container_list", "container_log_reopen", "container_remove", "container_start", "container_stats",
    "container_status", "container_stop", "container_update", "image_fsinfo", "image_list", "image_pull",
    "image_remove", "image_status", "runtime_config", "sandbox_list", "sandbox_portforward", "sandbox_remove",
    "sandbox_run", "sandbox_stats", "sandbox_status", "sandbox_stop", "status", "version",
))
