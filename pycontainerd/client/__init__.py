"""The Python client library for pycontainerd — and for any containerd (same wire API).

Async first::

    async with AsyncClient("/run/pycontainerd/pycontainerd.sock", namespace="default") as c:
        print(await c.version())
        image = await c.pull("127.0.0.1:5000/library/busybox:latest", plain_http=True)

Errors are the typed exceptions of :mod:`pycontainerd.errdefs` (``NotFound``,
``AlreadyExists``, ``FailedPrecondition``, …) mapped from gRPC status codes.
"""

from .client import AsyncClient, Version

__all__ = ["AsyncClient", "Version"]
