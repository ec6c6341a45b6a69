"""Facts of Kubernetes' streaming protocols (remote command and port-forward) shared by
the server and our test client: protocol names, stream types, channel numbers, the
metav1.Status documents of the error stream, and the WebSocket channel framing.

Remote command (exec/attach), negotiated through ``X-Stream-Protocol-Version`` (SPDY) or
``Sec-WebSocket-Protocol`` (WebSocket)::

    v4.channel.k8s.io   error stream carries a metav1.Status JSON; exit code as a cause
    v5.channel.k8s.io   WebSocket only: the client sends [255, channel] to close a
                        stream (stdin EOF); the server never sends 255
    v3/v2.channel.k8s.io  older: plain text on the error stream (v3 adds resize)

SPDY streams carry a ``streamType`` header: stdin, stdout, stderr, error, resize. WebSocket
messages are binary (or base64 text for the ``base64.`` variants), first byte = channel::

    0 stdin  1 stdout  2 stderr  3 error  4 resize  255 close (v5: second byte = channel)

Port-forward: SPDY protocol ``portforward.k8s.io``; per forwarded connection an ``error``
and a ``data`` stream with headers ``port`` and ``requestID``. WebSocket (``v4.channel.k8s.io``
or ``portforward.k8s.io``): ports from the ``ports`` query parameter; channel ``2*i`` is
data and ``2*i+1`` error for port ``i``; the first two bytes sent on each channel are the
port, little endian.

client-go's WebSocket port-forward dialer (``crictl port-forward --transport websocket``,
kubectl's) tunnels SPDY instead: subprotocol ``SPDY/3.1+portforward.k8s.io``, then the
bytes of a SPDY/3.1 session (no HTTP upgrade inside) in the WebSocket's binary messages,
streams as over plain SPDY. Kubernetes' API server terminates that tunnel; we serve it
directly.

Resize messages are JSON ``{"Width": 80, "Height": 24}`` (a stream of such objects).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

HEADER_PROTOCOL_VERSION = "X-Stream-Protocol-Version"
HEADER_STREAM_TYPE = "streamType"
HEADER_PORT = "port"
HEADER_REQUEST_ID = "requestID"

V1 = "channel.k8s.io"
V2 = "v2.channel.k8s.io"
V3 = "v3.channel.k8s.io"
V4 = "v4.channel.k8s.io"
V5 = "v5.channel.k8s.io"
V4_BASE64 = "v4.base64.channel.k8s.io"
BASE64 = "base64.channel.k8s.io"
PORT_FORWARD_V1 = "portforward.k8s.io"
SPDY_TUNNEL_PREFIX = "SPDY/3.1+"
PORT_FORWARD_TUNNEL = SPDY_TUNNEL_PREFIX + PORT_FORWARD_V1

SPDY_REMOTE_COMMAND = (V4, V3, V2)
"""Remote-command protocols served over SPDY, preferred first (v5's stream close is a
WebSocket feature; SPDY closes streams with FIN)."""
WS_REMOTE_COMMAND = (V5, V4, V4_BASE64, BASE64, V1)
WS_PORT_FORWARD = (V4, V4_BASE64, PORT_FORWARD_V1, PORT_FORWARD_TUNNEL)
SPDY_PORT_FORWARD = (PORT_FORWARD_V1,)

STDIN, STDOUT, STDERR, ERROR, RESIZE = "stdin", "stdout", "stderr", "error", "resize"
DATA = "data"
CHANNELS = {STDIN: 0, STDOUT: 1, STDERR: 2, ERROR: 3, RESIZE: 4}
CLOSE_CHANNEL = 255

STREAM_CREATION_TIMEOUT = 30.0
"""Seconds a SPDY client has to open every stream it asked for (kubelet's default)."""


def negotiate(offered: list[str], supported: tuple[str, ...]) -> str | None:
    """The first of ``supported`` that the client ``offered`` (comma-separated header
    values are split); None when none matches."""
    wanted = {p.strip() for item in offered for p in item.split(",") if p.strip()}
    for p in supported:
        if p in wanted:
            return p
    return None


def success_status() -> dict[str, Any]:
    return {"metadata": {}, "status": "Success"}


def exit_status(code: int, cmd: list[str] | None = None) -> dict[str, Any]:
    """The v4 status of a finished process: Success for 0, else ``NonZeroExitCode``."""
    if code == 0:
        return success_status()
    what = f"error executing command {cmd}, exit code {code}" if cmd else f"exit code {code}"
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: {what}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def internal_error_status(message: str) -> dict[str, Any]:
    return {"metadata": {}, "status": "Failure", "message": f"Internal error occurred: {message}",
            "reason": "InternalError", "details": {"causes": [{"message": message}]}, "code": 500}


def status_bytes(status: dict[str, Any], protocol: str) -> bytes:
    """What goes on the error stream: the JSON status for v4/v5; for older protocols the
    message only, and nothing on success."""
    if protocol in (V4, V5, V4_BASE64):
        return json.dumps(status, separators=(",", ":")).encode()
    if status.get("status") == "Success":
        return b""
    return status.get("message", "error").encode()


def exit_code_of(status: dict[str, Any]) -> int | None:
    """The exit code a v4 status reports (0 on Success; None when it is not an exit)."""
    if status.get("status") == "Success":
        return 0
    if status.get("reason") == "NonZeroExitCode":
        for cause in (status.get("details") or {}).get("causes") or []:
            if cause.get("reason") == "ExitCode":
                return int(cause.get("message", "0"))
    return None


@dataclass(frozen=True)
class TerminalSize:
    width: int
    height: int


class ResizeDecoder:
    """Cut a byte stream of JSON resize objects into :class:`TerminalSize` values
    (objects may be split across reads or several may come in one)."""

    def __init__(self) -> None:
        self._buf = ""
        self._dec = json.JSONDecoder()

    def feed(self, data: bytes) -> list[TerminalSize]:
        self._buf += data.decode(errors="replace")
        out = []
        while True:
            text = self._buf.lstrip()
            if not text:
                self._buf = ""
                break
            try:
                obj, end = self._dec.raw_decode(text)
            except json.JSONDecodeError:
                self._buf = text
                break
            self._buf = text[end:]
            if isinstance(obj, dict):
                w, h = int(obj.get("Width", 0) or 0), int(obj.get("Height", 0) or 0)
                if w > 0 and h > 0:
                    out.append(TerminalSize(w, h))
        return out


def resize_message(width: int, height: int) -> bytes:
    return json.dumps({"Width": width, "Height": height}).encode()


# -- WebSocket channel framing -----------------------------------------------------------

def ws_encode(channel: int, data: bytes, *, base64_text: bool = False) -> bytes | str:
    """A channel message: ``bytes([channel]) + data``, or for the base64 protocols the text
    ``str(channel) + base64(data)`` (channel as an ASCII digit)."""
    if base64_text:
        return chr(ord("0") + channel) + base64.b64encode(data).decode()
    return bytes([channel]) + data


def ws_decode(message: bytes | str, *, base64_text: bool = False) -> tuple[int, bytes]:
    """``(channel, payload)`` of a channel message. With ``base64_text`` a text message is
    ``digit + base64``; otherwise a text message is read like a binary one (clients such
    as the kubernetes Python package send ``chr(channel) + data`` as text frames). Raises
    ValueError on an empty or malformed message."""
    if isinstance(message, str) and not base64_text:
        if not message:
            raise ValueError("empty channel message")
        return ord(message[0]) & 0xFF, message[1:].encode()
    if isinstance(message, str):
        if not message:
            raise ValueError("empty channel message")
        channel = ord(message[0]) - ord("0")
        if not 0 <= channel <= 9:
            raise ValueError(f"bad base64 channel {message[0]!r}")
        return channel, base64.b64decode(message[1:])
    if not message:
        raise ValueError("empty channel message")
    return message[0], bytes(message[1:])


def ws_close_message(channel: int) -> bytes:
    """v5: close ``channel`` (the peer sees EOF on it)."""
    return bytes([CLOSE_CHANNEL, channel])


def port_prefix(port: int) -> bytes:
    return int(port).to_bytes(2, "little")


__all__ = [
    "BASE64", "CHANNELS", "CLOSE_CHANNEL", "DATA", "ERROR", "HEADER_PORT", "HEADER_PROTOCOL_VERSION",
    "HEADER_REQUEST_ID", "HEADER_STREAM_TYPE", "PORT_FORWARD_TUNNEL", "PORT_FORWARD_V1", "RESIZE", "ResizeDecoder",
    "SPDY_PORT_FORWARD", "SPDY_REMOTE_COMMAND", "SPDY_TUNNEL_PREFIX", "STDERR", "STDIN", "STDOUT",
    "STREAM_CREATION_TIMEOUT", "TerminalSize", "V1", "V2", "V3", "V4", "V4_BASE64", "V5", "WS_PORT_FORWARD",
    "WS_REMOTE_COMMAND", "exit_code_of", "exit_status", "internal_error_status", "negotiate", "port_prefix",
    "resize_message", "status_bytes", "success_status", "ws_close_message", "ws_decode", "ws_encode",
]
