"""Issue 18.4: the daemon dying under a command gives one message everywhere, the one
docs/client.md documents — ``cannot connect to ADDRESS within Ns (is the daemon running?)`` —
from the client library (a call, a pull, ``with Client(...)``) and from ``pyctr``; ``pyctr
run`` adds that the container may still be running and how to find it. The daemon is killed
with SIGKILL (as a crash), then started again on the same directories to clean up."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time

import pytest

from pycontainerd.client import Client, Unavailable
from tests.support.pyctr import pyctr, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.root]


def gone(address: str, seconds: str) -> str:
    return f"cannot connect to {address} within {seconds}s (is the daemon running?): unavailable"


def test_a_call_and_a_pull_after_the_daemon_died(daemon, busybox_image):
    client = Client(daemon.address, timeout=1)
    try:
        assert client.version().version
        daemon.kill()
        with pytest.raises(Unavailable) as err:
            client.version()
        assert str(err.value) == gone(daemon.address, "1")
        with pytest.raises(Unavailable) as err:
            client.pull(busybox_image.oci.ref, plain_http=True)
        assert str(err.value) == gone(daemon.address, "1")
    finally:
        client.close()
    with pytest.raises(Unavailable) as err:
        with Client(daemon.address, timeout=1):
            pass
    assert str(err.value) == gone(daemon.address, "1")


def test_a_stream_cut_by_the_daemon_dying_says_the_daemon_is_gone(daemon):
    """A call in flight when the daemon dies: gRPC's channel may still read READY for a moment,
    which once made the error say the daemon was "answering again" while it was dead."""
    client = Client(daemon.address, timeout=1)
    try:
        for _ in range(5):
            events = iter(client.subscribe())
            stop = threading.Event()

            def poke() -> None:  # events until the subscription (opened by next()) sees one
                while not stop.wait(0.2):
                    with contextlib.suppress(Exception):
                        client.create_namespace("gone-probe")
                        client.delete_namespace("gone-probe")

            poker = threading.Thread(target=poke)
            poker.start()
            try:
                assert next(events).topic.startswith("/namespaces/")
            finally:
                stop.set()
                poker.join()
            daemon.kill()
            with pytest.raises(Unavailable) as err:
                next(iter(events))
            assert str(err.value) == gone(daemon.address, "1")
            daemon.start()
    finally:
        client.close()


def test_a_call_made_while_the_daemon_restarts_waits_for_it(daemon):
    """A call that could not be sent is sent again once the daemon answers within the timeout."""
    client = Client(daemon.address, timeout=30)
    try:
        assert client.version().version
        daemon.kill()
        daemon.start(wait=False)  # answers again a moment later, on the same socket
        assert client.version().version
    finally:
        client.close()


def test_pyctr_run_that_loses_the_daemon_says_the_container_may_still_run(daemon, busybox_image):
    pyctr(daemon, "images", "pull", "--plain-http", busybox_image.oci.ref)
    cmd = [sys.executable, "-m", "pycontainerd_cmd.ctr", "-a", daemon.address, "--connect-timeout", "2",
           "run", busybox_image.oci.ref, "survivor", "sleep", "1000"]
    run = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: "survivor" in pyctr(daemon, "tasks", "ls", "-q", check=False).stdout.split())
        time.sleep(0.5)  # let pyctr reach its wait on the task
        daemon.kill()
        _, err = run.communicate(timeout=60)
        assert run.returncode == 1
        assert err.splitlines() == [
            f"pyctr: cannot connect to {daemon.address} within 2s (is the daemon running?); container survivor "
            "may still be running (its shim outlives the daemon): once the daemon is back, `pyctr tasks ls` "
            "lists it and `pyctr tasks kill survivor` stops it: unavailable"], err
        daemon.start()  # reconnects to the shim: the container did survive, as the message says
        assert pyctr(daemon, "tasks", "ls", "-q").stdout.split() == ["survivor"]
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        if daemon.proc is None:
            daemon.start()  # reconnects to the shim, so the task can be removed
        pyctr(daemon, "tasks", "rm", "-f", "survivor", check=False)
        pyctr(daemon, "containers", "rm", "survivor", check=False)
    assert pyctr(daemon, "containers", "ls", "-q").stdout.split() == []
