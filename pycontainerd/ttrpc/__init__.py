"""ttrpc, containerd's small RPC protocol (github.com/containerd/ttrpc), for the shim API.

Layers, bottom up, over :mod:`pycontainerd.sysutil.protowire` (a minimal hand-written
protobuf codec, so that the shim never loads ``google.protobuf``):

- :mod:`.wire` — frames (a 10-byte header: 4-byte big-endian length, 4-byte stream id,
  1-byte type, 1-byte flags) carrying the ``ttrpc.Request`` / ``ttrpc.Response`` envelopes
  (encoded with ``protowire``), the status-code table and the mapping between
  :mod:`pycontainerd.errdefs` and ``google.rpc.Status``.
- :mod:`.reactor` — a single-threaded ``epoll`` event loop with timers and signals.
- :mod:`.server` — a blocking, thread-free server on a reactor (what the shim serves
  ``containerd.task.v2.Task`` with); handlers may answer later (``Deferred``).
- :mod:`.client` — a blocking client (one call at a time), for tools and tests.
- :mod:`.aio` — an asyncio client (concurrent calls multiplexed by stream id) and server,
  for the daemon.

Nothing in this package but :mod:`.aio` imports asyncio, and nothing imports grpc: the shim
imports only :mod:`.wire`, :mod:`.reactor`, :mod:`.server` and :mod:`.client`, so that it stays
small (its memory per container is a benchmark figure).
"""
