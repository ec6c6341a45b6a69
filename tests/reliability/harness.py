"""kill -9 of the daemon at random points of its work, then restart and check (issue 9).

:class:`FaultRunner` drives a running daemon with Debian's ``ctr`` through six phases —
``pull`` (fetch + unpack), ``unpack`` (content already fetched), ``create`` (container),
``start`` (``ctr run -d``), ``delete`` (task and container) and ``gc`` (``images rm
--sync``) — and in each iteration starts one phase's operation, SIGKILLs the daemon after
a random delay within that operation's measured duration, restarts the daemon, forces a
garbage collection (a lease deleted with ``--sync``), runs the consistency checker
(:func:`pycontainerd.admin.check.check`) and checks that the container started before
all faults (``survivor``) is still RUNNING with the same pid. The only problem accepted is
the one containerd's client protocol itself makes (see :func:`client_step_missing`); the
runner then finishes that client's delete and the checker must find nothing.

The randomness is seeded: ``seed`` is printed and ``PYCONTAINERD_FAULT_SEED`` replays a
run. Used by ``tests/reliability/test_daemon_kill.py`` (a few iterations) and
``bench/faults.py`` (50 and more).
"""

from __future__ import annotations

import os
import random
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pycontainerd.admin.check import Report, check
from pycontainerd.testing import force_cleanup

PHASES = ("pull", "unpack", "create", "start", "delete", "gc")
SEED_ENV = "PYCONTAINERD_FAULT_SEED"
SURVIVOR = "survivor"
VICTIM = "victim"


def seed_from_env() -> int:
    """The seed in ``PYCONTAINERD_FAULT_SEED``, or a fresh one."""
    text = os.environ.get(SEED_ENV, "")
    return int(text) if text else random.SystemRandom().randrange(1 << 32)


def client_step_missing(phase: str, problem) -> bool:
    """True for the one inconsistency the *client* makes when it dies with the daemon:
    containerd's client deletes a container in two calls, its snapshot first
    (``container.Delete`` with ``WithSnapshotCleanup``, containerd 1.6 ``container.go``),
    so a kill between them leaves the container without its snapshot. The checker reports
    it (the container cannot start again); the runner then finishes the delete."""
    return (phase == "delete" and problem.kind == "container" and problem.id == VICTIM
            and problem.problem.startswith(f"its snapshot '{VICTIM}' "))


class FaultError(AssertionError):
    """An iteration found a problem; the message says which phase, delay and seed."""


@dataclass
class Summary:
    """What a run did: ``iterations``, faults injected per phase, problems found."""

    seed: int
    iterations: int = 0
    faults: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PHASES, 0))
    problems: int = 0
    client_steps: int = 0  # deletes the killed client left half-done, finished by the runner
    seconds: float = 0.0
    durations: dict[str, float] = field(default_factory=dict)


class FaultRunner:
    """See the module doc.

    Args:
        daemon: a started :class:`pycontainerd.testing.Daemon` (or any object with ``address``,
            ``root``, ``state``, ``kill()``, ``start()`` and ``log()``).
        ctr_bin: path of Debian's ``ctr``.
        small: a small image reference (runs the containers).
        layered: an image with several layers (pulled and unpacked).
        seed: the random seed.
        say: where progress lines go.
    """

    def __init__(self, daemon, ctr_bin: str, small: str, layered: str, seed: int,
                 say: Callable[[str], object] = print) -> None:
        self.daemon = daemon
        self.ctr_bin = ctr_bin
        self.small = small
        self.layered = layered
        self.rng = random.Random(seed)
        self.summary = Summary(seed)
        self.say = say
        self.survivor_pid = ""

    # --- ctr

    def ctr_argv(self, *args: str) -> list[str]:
        return [self.ctr_bin, "--address", self.daemon.address, "--connect-timeout", "5s", *args]

    def ctr(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        p = subprocess.run(self.ctr_argv(*args), capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise FaultError(f"ctr {' '.join(args)} failed ({p.returncode}): {p.stderr.strip()}")
        return p

    def tasks(self) -> dict[str, tuple[str, str]]:
        """``{id: (pid, status)}`` from ``ctr tasks ls``."""
        rows = self.ctr("tasks", "ls").stdout.splitlines()[1:]
        return {r.split()[0]: (r.split()[1], r.split()[2]) for r in rows if len(r.split()) >= 3}

    def sync_gc(self) -> None:
        """Run one full garbage collection now (a lease deleted with ``--sync``)."""
        lease = self.ctr("leases", "create").stdout.split()[0]
        self.ctr("leases", "rm", "--sync", lease)

    # --- set-up and the phases' operations

    def setup(self) -> None:
        """Pull the small image, start ``survivor``, measure each phase once (no fault)."""
        self.ctr("images", "pull", "--plain-http", self.small)
        self.ctr("run", "-d", self.small, SURVIVOR, "sleep", "100000")
        self.survivor_pid = self.tasks()[SURVIVOR][0]
        for phase in PHASES:
            self.prepare(phase)
            started = time.monotonic()
            proc = self.start_op(phase)
            out, err = proc.communicate(timeout=120)
            if proc.returncode != 0:
                raise FaultError(f"phase {phase} fails without a fault: {err.strip()}")
            self.summary.durations[phase] = time.monotonic() - started
        self.say("phase durations without faults: "
                 + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in self.summary.durations.items()))

    def _reset_victim(self) -> None:
        # the leases of clients killed with the daemon: nobody will finish their work (an
        # operator removes them after a crash; containerd's expire in 24 h)
        leases = self.ctr("leases", "ls", "-q").stdout.split()
        if leases:
            self.ctr("leases", "rm", *leases)
        self.ctr("tasks", "rm", "-f", VICTIM, check=False)
        self.ctr("containers", "rm", VICTIM, check=False)
        self.ctr("snapshots", "rm", VICTIM, check=False)

    def prepare(self, phase: str) -> None:
        """Bring the daemon to where ``phase``'s operation starts, whatever a fault left."""
        self._reset_victim()
        if phase == "pull":
            self.ctr("images", "rm", "--sync", self.layered, check=False)
        elif phase == "unpack":
            self.ctr("images", "rm", "--sync", self.layered, check=False)
            self.ctr("content", "fetch", "--plain-http", self.layered)
        elif phase == "delete":
            self.ctr("run", "-d", self.small, VICTIM, "sleep", "100000")
        elif phase == "gc":
            self.ctr("images", "pull", "--plain-http", self.layered)

    def start_op(self, phase: str) -> subprocess.Popen:
        if phase in ("pull", "unpack"):
            argv = self.ctr_argv("images", "pull", "--plain-http", self.layered)
        elif phase == "create":
            argv = self.ctr_argv("containers", "create", self.small, VICTIM, "sleep", "100000")
        elif phase == "start":
            argv = self.ctr_argv("run", "-d", self.small, VICTIM, "sleep", "100000")
        elif phase == "delete":
            rm_task = " ".join(self.ctr_argv("tasks", "rm", "-f", VICTIM))
            rm_container = " ".join(self.ctr_argv("containers", "rm", VICTIM))
            argv = ["sh", "-c", f"{rm_task} && {rm_container}"]
        elif phase == "gc":
            argv = self.ctr_argv("images", "rm", "--sync", self.layered)
        else:
            raise ValueError(f"unknown phase {phase!r}")
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    # --- one fault

    def iteration(self, phase: str | None = None) -> Report:
        """One fault in ``phase`` (random when None); returns the checker's report after
        the restart. Raises :class:`FaultError` with the reproduction details when the
        state is inconsistent or ``survivor`` did not survive."""
        phase = phase or self.rng.choice(PHASES)
        delay = self.rng.uniform(0, self.summary.durations[phase])
        self.prepare(phase)
        proc = self.start_op(phase)
        time.sleep(delay)
        self.daemon.kill()
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
        self.summary.faults[phase] += 1
        self.summary.iterations += 1
        where = f"phase {phase}, kill after {delay * 1000:.0f} ms, seed {self.summary.seed}"
        self.daemon.start()
        self.sync_gc()
        report = check(self.daemon.root, self.daemon.state)
        unexplained = [p for p in report.problems if not client_step_missing(phase, p)]
        if unexplained:
            self.summary.problems += len(unexplained)
            raise FaultError(f"inconsistent after a kill -9 ({where}; replay with {SEED_ENV}="
                             f"{self.summary.seed}):\n" + "\n".join(p.line() for p in unexplained))
        if report.problems:  # the client's last step: done as a client retrying would
            self.summary.client_steps += 1
            self.ctr("containers", "rm", VICTIM)
            self.sync_gc()  # the delete's own collection runs a moment later; this one now
            report = check(self.daemon.root, self.daemon.state)
            if not report.ok:
                self.summary.problems += len(report.problems)
                raise FaultError(f"inconsistent after finishing the client's delete ({where}):\n"
                                 + "\n".join(p.line() for p in report.problems))
        tasks = self.tasks()
        if tasks.get(SURVIVOR) != (self.survivor_pid, "RUNNING"):
            raise FaultError(f"survivor did not survive ({where}): tasks {tasks}")
        self.say(f"iteration {self.summary.iterations}: {where}: consistent")
        return report

    def run(self, iterations: int) -> Summary:
        """Set up, then ``iterations`` faults over the phases (each phase equally often, in
        a random order); the summary of the run."""
        started = time.monotonic()
        self.setup()
        order = [PHASES[i % len(PHASES)] for i in range(iterations)]
        self.rng.shuffle(order)
        for phase in order:
            self.iteration(phase)
        self.summary.seconds = time.monotonic() - started
        return self.summary

    def teardown(self) -> None:
        """Remove every task and container through the daemon (restarted if it is down);
        if it cannot be started, kill the shims and containers directly."""
        d = self.daemon
        try:
            if d.proc is None or d.proc.poll() is not None:
                d.stop()
                d.start()
        except Exception as exc:  # noqa: BLE001 — clean up without it
            self.say(f"daemon does not start ({exc}); removing containers with runc")
            force_cleanup(d.state)
            return
        for id in (VICTIM, SURVIVOR):
            self.ctr("tasks", "rm", "-f", id, check=False)
            self.ctr("containers", "rm", id, check=False)


