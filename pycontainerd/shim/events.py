"""Events from the shim to the daemon: ``containerd.services.events.ttrpc.v1.Events/Forward``.

Events are queued in publication order and sent from the reactor when it is idle (after
the response of the call that caused them has been written). The daemon listens on
``$TTRPC_ADDRESS``, by default ``<-address>.ttrpc`` (what containerd does). When that socket
does not exist and a ``-publish-binary`` was given, the event goes through
``<binary> --address <address> publish --topic T --namespace NS`` with the ``Any`` on stdin
(containerd's pre-ttrpc publisher). A failed send is retried after 1 s, 2 s, … and dropped
after 5 retries, like containerd's ``RemoteEventsPublisher``; later events wait behind it,
so the order never changes.

A send blocks the shim's loop (connect ≤ 1 s, call ≤ 5 s). A daemon that is down costs
nothing (connecting fails at once); only a daemon that accepts but does not answer can
stall a shim, for at most those bounds per attempt.

Topics are containerd's (``core/runtime/events.go``).
"""

from __future__ import annotations

import os
import sys
import time
from collections import deque
from collections.abc import Callable

from ..errdefs import ContainerdError
from ..ttrpc import client as ttrpc_client
from ..ttrpc.reactor import Reactor
from . import proto as pb
from .spawn import run

TASK_CREATE = "/tasks/create"
TASK_START = "/tasks/start"
TASK_EXIT = "/tasks/exit"
TASK_DELETE = "/tasks/delete"
TASK_OOM = "/tasks/oom"
TASK_EXEC_ADDED = "/tasks/exec-added"
TASK_EXEC_STARTED = "/tasks/exec-started"
TASK_PAUSED = "/tasks/paused"
TASK_RESUMED = "/tasks/resumed"
TASK_CHECKPOINTED = "/tasks/checkpointed"

SERVICE = "containerd.services.events.ttrpc.v1.Events"
MAX_REQUEUE = 5
FORWARD_TIMEOUT = 5.0
CONNECT_TIMEOUT = 1.0


def envelope(namespace: str, topic: str, event: pb.Message, now_ns: int | None = None) -> pb.Envelope:
    """The ``Envelope`` of one event: now, the namespace, the topic and the event as an ``Any``
    (type URL = the event's full name, e.g. ``containerd.events.TaskExit``)."""
    return pb.Envelope(timestamp=pb.Timestamp.from_ns(time.time_ns() if now_ns is None else now_ns),
                       namespace=namespace, topic=topic, event=pb.pack(event))


class Publisher:
    """The shim's event queue; see the module docstring."""

    def __init__(self, reactor: Reactor, namespace: str, ttrpc_address: str, *, address: str = "",
                 publish_binary: str = "",
                 connect: Callable[[str], ttrpc_client.Client] | None = None) -> None:
        self.reactor = reactor
        self.namespace = namespace
        self.ttrpc_address = ttrpc_address
        self.address = address
        self.publish_binary = publish_binary
        self._connect = connect or (lambda address: ttrpc_client.Client(address, timeout=CONNECT_TIMEOUT))
        self._client: ttrpc_client.Client | None = None
        self._queue: deque[tuple[pb.Envelope, int]] = deque()
        self._scheduled = False
        self._retrying = False

    def publish(self, topic: str, event: pb.Message) -> None:
        self._queue.append((envelope(self.namespace, topic, event), 0))
        self._schedule()

    @property
    def pending(self) -> int:
        return len(self._queue)

    def _schedule(self, delay: float = 0.0) -> None:
        if self._scheduled:
            return
        self._scheduled = True
        self._retrying = bool(delay)
        if delay:
            self.reactor.call_later(delay, self._flush)
        else:
            self.reactor.call_soon(self._flush)

    def flush(self) -> None:
        """Send what is queued now (unless a retry is waiting for its back-off)."""
        if not self._retrying:
            self._flush()

    def _flush(self) -> None:
        self._scheduled = False
        self._retrying = False
        while self._queue:
            env, count = self._queue[0]
            try:
                self._send(env)
            except Exception as exc:
                count += 1
                if count > MAX_REQUEUE:
                    print(f"shim: evicting {env.topic} from queue because of retry count: {exc}", file=sys.stderr)
                    self._queue.popleft()
                    continue
                self._queue[0] = (env, count)
                print(f"shim: forward event {env.topic}: {exc}", file=sys.stderr)
                self._schedule(float(count))
                return
            self._queue.popleft()

    def _send(self, env: pb.Envelope) -> None:
        path = self.ttrpc_address[len("unix://"):] if self.ttrpc_address.startswith("unix://") else self.ttrpc_address
        if self.publish_binary and not os.path.exists(path) and not path.startswith(("@", "\0")):
            self._send_binary(env)
            return
        payload = pb.ForwardRequest(envelope=env).encode()
        for attempt in (0, 1):
            if self._client is None or self._client.closed:
                self._client = self._connect(self.ttrpc_address)
            try:
                self._client.call(SERVICE, "Forward", payload, timeout=FORWARD_TIMEOUT)
                return
            except ContainerdError as exc:
                if exc.code != "UNAVAILABLE" or attempt:
                    raise
                self._client.close()  # reconnect once, as containerd does on ErrClosed
                self._client = None

    def _send_binary(self, env: pb.Envelope) -> None:
        argv = [self.publish_binary, "--address", self.address, "publish", "--topic", env.topic,
                "--namespace", env.namespace]
        p = run(argv, capture=True, input=env.event.encode(), timeout=FORWARD_TIMEOUT)
        if p.returncode != 0:
            raise RuntimeError(f"{self.publish_binary} publish: {p.stderr.decode(errors='replace').strip()}")

    def close(self, timeout: float = 2.0) -> None:
        """Try to deliver what is queued (bounded by ``timeout``), then drop the connection."""
        deadline = time.monotonic() + timeout
        while self._queue and time.monotonic() < deadline:
            env, _ = self._queue[0]
            try:
                self._send(env)
            except Exception:
                break
            self._queue.popleft()
        if self._client is not None:
            self._client.close()
            self._client = None
