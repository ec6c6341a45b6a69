"""The CRI handlers, one module per CRI call (containerd's ``internal/cri/server`` layout):
each defines ``async def <call>(svc: CRIService, request) -> response`` on the ``runtime.v1``
messages and raises :mod:`pycontainerd.errdefs` errors, which the gRPC layer
(:mod:`pycontainerd.cri.servicer`) turns into status codes."""
