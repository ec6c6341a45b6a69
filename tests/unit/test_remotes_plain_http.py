"""Issue 18.3: an HTTPS request that reaches a plain-HTTP registry says what to do, in the
remotes layer (so pyctr, the client library and the CRI plugin all say it)."""

from __future__ import annotations

import http.server
import threading

import pytest

from pycontainerd.errdefs import Unavailable
from pycontainerd.remotes.resolver import Resolver


class _Registry(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    do_HEAD = do_GET  # noqa: N815

    def log_message(self, *args):
        pass


@pytest.fixture
def plain_http_registry():
    """A real HTTP server on 127.0.0.1 (no TLS), as Debian's docker-registry serves by default."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Registry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_https_to_plain_http_registry_says_use_plain_http(plain_http_registry):
    async with Resolver() as resolver:
        with pytest.raises(Unavailable) as err:
            await resolver.resolve(f"{plain_http_registry}/library/busybox:latest")
    msg = str(err.value)
    assert f"the registry {plain_http_registry} answered plain HTTP to an HTTPS request" in msg
    assert "--plain-http" in msg and "hosts.toml" in msg
    assert "WRONG_VERSION_NUMBER" not in msg and "_ssl.c" not in msg


async def test_other_transport_errors_keep_their_reason():
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with Resolver() as resolver:
        with pytest.raises(Unavailable) as err:
            await resolver.resolve(f"127.0.0.1:{port}/library/busybox:latest")
    assert "ConnectError" in str(err.value) and "plain HTTP" not in str(err.value)
