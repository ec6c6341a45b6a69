"""The daemon as a server: its life (:mod:`.daemon`: lock the root, initialise plugins, serve,
stop on a signal), the gRPC server on the unix socket with its interceptor
(:mod:`.grpc_server`, :mod:`.interceptors`), the ttrpc socket where shims publish events
(:mod:`.ttrpc_events`), and the operator endpoints (:mod:`.operations`: :mod:`.debug`,
:mod:`.metrics`) on :mod:`pycontainerd.listen.http`, the one HTTP server loop, which the
CRI's streaming server uses too. The servicers it serves are in :mod:`pycontainerd.services`, wired to it by the
plugins."""
