"""A blocking ttrpc client: one call at a time on one connection.

For tools and tests, and for the shim's event publisher (the shim has no asyncio). The
daemon uses :class:`pycontainerd.ttrpc.aio.Client`, which multiplexes concurrent calls.

Errors: a non-OK status raises the matching :mod:`pycontainerd.errdefs` class; a
connection that cannot be made or is lost raises :class:`~pycontainerd.errdefs.Unavailable`
(the connection is then closed); a call that outlives its timeout raises
:class:`~pycontainerd.errdefs.DeadlineExceeded` (the connection stays usable, a late answer
is dropped).

Example::

    with Client("unix:///run/shim.sock") as c:
        payload = c.call("containerd.task.v2.Task", "Connect", req.SerializeToString(), timeout=5)
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterable

from ..errdefs import DeadlineExceeded, Unavailable
from . import wire


class Client:
    def __init__(self, address: str, timeout: float | None = 10.0) -> None:
        self.address = address
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(wire.socket_path(address))
        except OSError as exc:
            self._sock.close()
            raise Unavailable(f"ttrpc: connect {address}: {exc.strerror or exc}") from exc
        self._decoder = wire.FrameDecoder()
        self._next_id = 1
        self.closed = False

    def call(self, service: str, method: str, payload: bytes, timeout: float | None = None,
             metadata: Iterable[tuple[str, str]] = ()) -> bytes:
        """Send one request and block for its response payload (see the module docstring)."""
        if self.closed:
            raise Unavailable("ttrpc: closed")
        sid = self._next_id
        self._next_id += 2
        data = wire.encode_request(service, method, payload, int(timeout * 1e9) if timeout else 0, metadata)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            self._sock.settimeout(timeout)
            self._sock.sendall(wire.encode_frame(sid, wire.TYPE_REQUEST, data))
            while True:
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError
                    self._sock.settimeout(left)
                chunk = self._sock.recv(1 << 16)
                if not chunk:
                    raise ConnectionResetError("connection closed by peer")
                for rsid, mtype, _flags, body in self._decoder.feed(chunk):
                    if rsid != sid or mtype != wire.TYPE_RESPONSE:
                        continue
                    if isinstance(body, wire.Oversized):
                        raise wire.exception_from_status(wire.status(
                            "RESOURCE_EXHAUSTED", f"message length {body.length} exceed maximum message size"))
                    resp = wire.decode_response(body)
                    err = wire.response_error(resp)
                    if err is not None:
                        raise err
                    return resp.payload
        except TimeoutError as exc:
            raise DeadlineExceeded(f"ttrpc: {service}/{method}") from exc
        except OSError as exc:
            self.close()
            raise Unavailable(f"ttrpc: {service}/{method}: {exc}") from exc

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
