"""The lean, standard-library-only layer under both the shim and the core, so the shim stays
small (its memory per container is a benchmark figure) and nothing is written twice:

- :mod:`.mounts` — ``mount(2)``/``umount2(2)``, the ``MS_*`` flags, option parsing, overlay
  compaction (:mod:`pycontainerd.mount` adds the core's ``Mount`` record on top);
- :mod:`.libc` — the C library calls made through :mod:`ctypes`, resolved once;
- :mod:`.files` — small whole-file reads and writes with plain system calls;
- :mod:`.protowire` — a minimal hand-written protobuf codec (no ``google.protobuf``);
- :mod:`.lean` — how the daemon starts the shim and its zygote (``python -S -P``).

Its modules import the standard library, each other and :mod:`pycontainerd.errdefs`
(itself standard-library only) — nothing else, not even ``dataclasses`` or ``typing``;
``tests/unit/test_layering.py`` keeps it so.
"""
