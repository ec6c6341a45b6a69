"""The pycontainerd shim: one small process per task (or per pod group), detached from the
daemon, that runs the OCI runtime and owns the task's processes, stdio and exit status.

- :mod:`.main` — the binary contract (``start`` / ``delete`` / the long-lived server);
- :mod:`.zygote` — a pre-imported interpreter our daemon forks shims from (no interpreter
  start per task; the daemon's side is :mod:`pycontainerd.runtime.zygote`);
- :mod:`.service` — ``containerd.task.v2.Task`` over ttrpc, exits and event order;
- :mod:`.process`, :mod:`.state` — containers, processes and their state machine;
- :mod:`.runc` — the OCI runtime's command line; :mod:`.stdio` — pipes, fifos, ptys;
- :mod:`.events` — the publisher to the daemon; :mod:`.cgroups` — stats and OOM.

The shim never imports grpc, asyncio or structlog (see ``tests/unit/test_shim_imports.py``).
"""
