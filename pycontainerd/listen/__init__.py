"""Listening sockets the daemon's servers share, below the server and the CRI plugin:
unix-socket preparation (:mod:`.sockets`: a stale socket replaced, a live one refused,
ownership and mode) and the one HTTP/1.1 server loop (:mod:`.http`, h11) that serves the
debug and metrics endpoints and the CRI streaming server."""
