"""The pycontainerd shim: one small process per task (or per pod group), detached from the
daemon, that runs the OCI runtime and owns the task's processes, stdio and exit status.

- :mod:`.main` — the binary contract (``start`` / ``delete`` / the long-lived server);
- :mod:`.zygote` — a pre-imported interpreter our daemon forks shims from (no interpreter
  start per task; the daemon's side is :mod:`pycontainerd.runtime.zygote`);
- :mod:`.service` — ``containerd.task.v2.Task`` over ttrpc, exits and event order;
- :mod:`.process`, :mod:`.state` — containers, processes and their state machine;
- :mod:`.runc` — the OCI runtime's command line; :mod:`.stdio` — pipes, fifos, ptys;
- :mod:`.events` — the publisher to the daemon; :mod:`.cgroups` — stats and OOM;
- :mod:`.proto` — the messages it serves and sends, encoded by
  :mod:`pycontainerd.sysutil.protowire` (no ``google.protobuf``);
- :mod:`.spawn` — running commands with ``posix_spawn`` (no ``subprocess``);
- from :mod:`pycontainerd.sysutil`, shared with the core: the rootfs ``mount(2)`` calls,
  small file reads and writes without ``open()``, the ``ctypes`` calls resolved once, and
  how a shim is started (:mod:`~pycontainerd.sysutil.lean`).

Its memory per container is a benchmark figure (shim RSS/PSS against
``containerd-shim-runc-v2``): it never imports grpc, asyncio, structlog, google.protobuf,
subprocess, dataclasses, inspect or typing (``tests/unit/test_shim_imports.py``), and what a
shim forked from the zygote writes is copied into it, so its code paths stay short.
"""
