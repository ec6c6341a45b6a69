"""The gRPC layer: servicers that translate protobuf ⇄ core types, the interceptor that
maps core errors to status codes, and the server that listens on the daemon's sockets.
Nothing here holds domain logic."""
