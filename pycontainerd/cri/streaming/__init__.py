"""The CRI streaming server: what the URLs returned by ``Exec``, ``Attach`` and
``PortForward`` lead to (kubelet, crictl and kubectl's proxy connect there, not to gRPC).

Layers, bottom up (each module's docstring has the wire facts):

- :mod:`.spdy` — SPDY/3.1 frames and zlib header blocks, sans-IO (no maintained Python
  library exists); :mod:`.spdyconn` — a SPDY session on asyncio streams;
- :mod:`.wsconn` — a WebSocket on asyncio streams, framing by ``wsproto``, and the byte
  tunnel client-go's WebSocket port-forward runs SPDY in;
- :mod:`.protocol` — Kubernetes' protocol names, stream types, channels, status documents;
- :mod:`.remotecommand` — stdin/stdout/stderr/resize/error for SPDY or WebSocket alike;
- :mod:`.runners` — exec through the task's shim, attach to the container's stdio;
- :mod:`.portforward` — connections into the pod's network namespace;
- :mod:`.sessions` — the SPDY and WebSocket upgrades and what runs on them;
- :mod:`.tokens` — single-use, one-minute tokens; :mod:`.server` — HTTP (``h11``), routing
  (GET and POST, as Kubernetes' server), TLS, idle timeout; it imports :mod:`.sessions`
  (and with it everything above but the tokens) with the first stream it serves.

The CRI plugin (:class:`pycontainerd.cri.servicer.CRIServer`) starts the server with the
service on ``stream_server_address:stream_server_port`` and stops it with the daemon.
"""
