"""One module per CRI call (containerd's ``internal/cri/server`` layout): each defines
``async def <call>(c: CRIService, request) -> response`` on the ``runtime.v1`` messages and
raises :mod:`pycontainerd.errdefs` errors, which the gRPC layer turns into status codes."""
