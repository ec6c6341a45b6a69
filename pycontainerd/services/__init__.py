"""The gRPC servicers: each translates protobuf ⇄ core types and calls the core; errors map
to status codes in :mod:`.errors`. Nothing here holds domain logic; the server that listens
and the interceptor every call passes are in :mod:`pycontainerd.server`."""
