"""``pyctr version``, ``images ls`` and ``containers ls`` import only what they use.

Each runs as a whole ``pyctr`` process (the console script's ``main``) and writes, at exit,
the modules it loaded. Asserted: none of the daemon's or of other commands' heavy
dependencies among them — an assertion on what loads, not on time (bench/cli.py times
the commands against ``ctr``). The daemon is absent (a socket path nobody serves): the
command fails to connect after having imported everything its success path needs, and
its error path is covered too.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = (
    "lmdb",  # the metadata database: the daemon's
    "httpx",  # registries: pull and push only
    "structlog",  # logging set-up (pulls rich in): configured only with --debug or when used
    "rich",
    "zstandard",  # layer compression
    "pyroute2",  # CNI networking
    "grpc_health.v1",  # (grpc itself looks for the bare packages: those are empty)
    "grpc_reflection.v1alpha",
    "pycontainerd.cri",
    "pycontainerd.server",  # the gRPC server and its services (also under .services before the move)
    "pycontainerd.services.server",
    "pycontainerd.services.daemon",
    "pycontainerd.services.interceptors",
    "pycontainerd.metadata.gc",
    "pycontainerd.oci.opts",  # spec building: containers create and run only
    "pycontainerd.remotes.fetcher",
    "pycontainerd.snapshots.storage",  # the snapshotters (their records, .types, are the wire's)
    "pycontainerd.snapshots.base",
    "pycontainerd.snapshots.overlay",
    "pycontainerd.snapshots.native",
    "pycontainerd.metadata",  # the LMDB stores (the client uses pycontainerd.records)
    "pycontainerd.content.local",
    "pycontainerd.shim.service",  # (mount helpers of pycontainerd.shim are shared with the client)
    "pycontainerd.client._sync",
)

RUN = """
import atexit, json, sys
out = sys.argv[1]
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
sys.argv = ["pyctr", *sys.argv[2:]]
from pycontainerd_cmd.ctr import main
main()
"""


def loaded_by(tmp_path, *args: str) -> tuple[set[str], subprocess.CompletedProcess]:
    out = tmp_path / "modules.json"
    proc = subprocess.run([sys.executable, "-c", RUN, str(out), "--address", str(tmp_path / "nobody.sock"),
                           "--connect-timeout", "0.2", *args], capture_output=True, text=True, timeout=60)
    return set(json.loads(out.read_text())), proc


@pytest.mark.parametrize("command", [("version",), ("images", "ls"), ("containers", "ls"), ("c", "ls", "-q")])
def test_a_listing_command_loads_no_heavy_module(tmp_path, command):
    modules, proc = loaded_by(tmp_path, *command)
    assert proc.returncode == 1 and proc.stderr.startswith("pyctr: "), (proc.returncode, proc.stderr)
    assert "nobody.sock" in proc.stderr, proc.stderr  # it did try the daemon: the client was loaded
    assert "pycontainerd.client.connection" in modules and "grpc" in modules
    heavy = sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))
    assert heavy == [], f"pyctr {' '.join(command)} imported {heavy}"


def test_debug_still_configures_logging(tmp_path):
    """``--debug`` is the one case that loads structlog in these commands: its debug lines."""
    modules, proc = loaded_by(tmp_path, "--debug", "version")
    assert proc.returncode == 1 and "structlog" in modules
    assert "Traceback" in proc.stderr  # --debug prints the traceback of the failure


def test_help_lists_every_command_without_importing_them_first(tmp_path):
    modules, proc = loaded_by(tmp_path, "--help")
    assert proc.returncode == 0, proc.stderr
    listed = {line.split()[0] for line in proc.stdout.split("Commands:")[1].splitlines() if line.strip()}
    assert {"images", "containers", "tasks", "run", "version", "info", "admin", "completion"} <= listed


def test_logging_and_image_walking_leave_rich_and_httpx_unloaded():
    """What every daemon, shim and CRI start imports: structlog without rich (its console
    renderer's tracebacks, unused here), the image-walking helpers without the HTTP stack.
    rich itself stays importable (pyctr's progress display)."""
    code = ("import sys; import pycontainerd.log, pycontainerd.remotes.fetch; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('rich', 'httpx'))); "
            "import rich.progress; pycontainerd.log.get_logger('t').warning('still logs')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
    assert "event='still logs'" in proc.stderr
