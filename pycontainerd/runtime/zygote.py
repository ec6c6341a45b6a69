"""The daemon's handle on its shim zygote (see :mod:`pycontainerd.shim.zygote`).

:meth:`Zygote.run` is ``pycontainerd-shim <flags> start|delete`` without an interpreter
start: the same flags, working directory, environment and stdin go to the zygote, which
forks a child to carry them out, and the result comes back as ``(exit status, stdout,
stderr)`` — what :class:`~pycontainerd.runtime.shim_manager.ShimManager` would have read
from the command. The zygote is started on first use; when it cannot be started, or dies,
:meth:`run` raises :class:`ZygoteUnavailable` and the caller runs the command instead.

Example::

    z = Zygote(env={"PYTHONPATH": python_path()})
    rc, out, err = await z.run(["-namespace", "default", "-id", "web", …, "start"],
                               cwd=bundle.path, env=env, stdin=b"", timeout=30)
    await z.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from collections.abc import Mapping, Sequence

from ..sysutil import lean

READY_TIMEOUT = 30.0
RETRY_AFTER = 60.0


class ZygoteUnavailable(Exception):
    """The zygote could not be started or went away before answering."""


class Zygote:
    """See the module docstring. ``env`` is the zygote's own environment (it needs
    ``PYTHONPATH`` for ``python -S``)."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)
        self.proc: asyncio.subprocess.Process | None = None
        self.pid = 0
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: dict[int, asyncio.Future[tuple[int, bytes, str]]] = {}
        self._ready: asyncio.Future[int] | None = None
        self._starting: asyncio.Lock | None = None
        self._next_id = 1
        self._retry_after = 0.0  # after a failed start, do not try again before this (loop time)

    @property
    def alive(self) -> bool:
        return self._sock is not None and self.proc is not None and self.proc.returncode is None

    async def run(self, argv: Sequence[str], *, cwd: str, env: Mapping[str, str], stdin: bytes = b"",
                  timeout: float | None = None) -> tuple[int, bytes, str]:
        """Run the shim action ``argv`` (flags then ``start`` or ``delete``) in a fork of
        the zygote. Raises :class:`ZygoteUnavailable` (nothing ran, or it is unknown
        whether it did: the zygote died) and :class:`asyncio.TimeoutError`."""
        rid = self._next_id
        self._next_id += 1
        data = json.dumps({"id": rid, "argv": list(argv), "cwd": cwd, "env": dict(env),
                           "stdin": stdin.hex()}).encode()
        if len(data) > lean.ZYGOTE_MAX_MESSAGE:
            raise ZygoteUnavailable("request too large for the zygote")
        for attempt in (0, 1):
            await self._ensure()
            assert self._sock is not None and self._loop is not None
            fut: asyncio.Future[tuple[int, bytes, str]] = self._loop.create_future()
            self._pending[rid] = fut
            try:
                try:
                    await self._loop.sock_sendall(self._sock, data)
                except OSError as exc:
                    # not delivered: the zygote died (and we had not noticed yet); a new one may
                    self._gone(f"zygote: send: {exc}")
                    if attempt:
                        raise ZygoteUnavailable(str(exc)) from exc
                    continue
                return await asyncio.wait_for(fut, timeout)
            finally:
                self._pending.pop(rid, None)
        raise ZygoteUnavailable("unreachable")  # pragma: no cover

    async def _ensure(self) -> None:
        if self.alive:
            return
        if asyncio.get_running_loop().time() < self._retry_after:
            raise ZygoteUnavailable("the shim zygote failed to start recently")
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self.alive:
                return
            try:
                await self._spawn()
            except ZygoteUnavailable:
                self._retry_after = asyncio.get_running_loop().time() + RETRY_AFTER
                raise

    async def _spawn(self) -> None:
        self._loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        for s in (ours, theirs):  # room for many requests/answers in flight
            with contextlib.suppress(OSError):
                s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * lean.ZYGOTE_MAX_MESSAGE)
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *lean.zygote_command(theirs.fileno()), pass_fds=(theirs.fileno(),), cwd="/",
                env=self.env, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL)
        except OSError as exc:
            ours.close()
            raise ZygoteUnavailable(f"start the shim zygote: {exc}") from exc
        finally:
            theirs.close()
        ours.setblocking(False)
        self._sock = ours
        self._ready = self._loop.create_future()
        self._loop.add_reader(ours.fileno(), self._on_readable)
        try:
            self.pid = await asyncio.wait_for(self._ready, READY_TIMEOUT)
        except (TimeoutError, ZygoteUnavailable) as exc:
            await self._stop()
            raise ZygoteUnavailable(f"the shim zygote did not start: {exc}") from None

    def _on_readable(self) -> None:
        sock = self._sock
        while sock is not None:
            try:
                msg = sock.recv(lean.ZYGOTE_MAX_MESSAGE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._gone(f"zygote: {exc}")
                return
            if not msg:
                self._gone("the shim zygote exited")
                return
            try:
                m = json.loads(msg)
            except ValueError:
                continue
            if "ready" in m:
                if self._ready is not None and not self._ready.done():
                    self._ready.set_result(int(m["ready"]))
                continue
            fut = self._pending.get(m.get("id"))
            if fut is not None and not fut.done():
                fut.set_result((int(m.get("rc", 1)), bytes.fromhex(m.get("stdout") or ""), m.get("stderr") or ""))

    def _gone(self, reason: str) -> None:
        """The socket is dead: fail everything waiting; the next run() starts a new zygote."""
        sock, self._sock = self._sock, None
        if sock is not None:
            if self._loop is not None:
                self._loop.remove_reader(sock.fileno())
            sock.close()
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(ZygoteUnavailable(reason))
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ZygoteUnavailable(reason))

    async def _stop(self) -> None:
        self._gone("closed")  # the zygote sees EOF and exits
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            await asyncio.wait_for(proc.wait(), 2)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    async def close(self) -> None:
        """Stop the zygote (shims it started keep running)."""
        await self._stop()


def enabled_by_env() -> bool:
    """``PYCONTAINERD_SHIM_ZYGOTE=0`` turns the zygote off (for comparisons)."""
    return os.environ.get("PYCONTAINERD_SHIM_ZYGOTE", "1").lower() not in ("0", "false", "no", "off")
