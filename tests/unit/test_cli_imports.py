"""``pyctr version``, ``images ls`` and ``containers ls`` import only what they use.

Each runs as a whole ``pyctr`` process (the console script's ``main``) and writes, at exit,
the modules it loaded — an assertion on what loads, not on time (bench/cli.py times the
commands against ``ctr``).

Against a real daemon holding an image and a container (:func:`test_a_listing_loads_what_it_uses_and_no_more`):
the generated modules of exactly the services the command calls load, and of our own
modules exactly those it needs (:data:`LOADS`); a new import on that path fails here until
it is listed, with a reason. (Sizing an image in ``images ls`` once imported the pull
path, hence httpx, structlog and rich; with no daemon to answer, the command never got
that far.) Without a daemon (a socket path nobody serves), the error path loads none of
the daemon's or other commands' heavy dependencies either (:data:`HEAVY`).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.pyctr import no_leftovers, pyctr  # noqa: F401  (autouse fixture)

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
    # what no listing uses: the other services' parts, events, terminals, pull
    "pycontainerd.client.tasks",
    "pycontainerd.client.containers",
    "pycontainerd.client.snapshots",
    "pycontainerd.client.cio",
    "pycontainerd.cli.attach",
    "pycontainerd.events",
    "pycontainerd.images.pull",
    "pycontainerd.remotes.fetch",
    "pycontainerd.mount",  # the mount syscalls (ctypes)
    "pycontainerd.api.events",
    "pycontainerd.api.cgroups",
    "pycontainerd.api.runtime",
    "google.protobuf.json_format",  # JSON output of messages only
)

ANY_COMMAND = {
    "pycontainerd_cmd", "pycontainerd_cmd.ctr", "pycontainerd", "pycontainerd.cli", "pycontainerd.cli.app",
    "pycontainerd.client", "pycontainerd.client.client", "pycontainerd.client.connection", "pycontainerd.lazy",
    "pycontainerd.errdefs", "pycontainerd.namespaces", "pycontainerd.identifiers", "pycontainerd.wire",
    "pycontainerd.wire.errors",
}
"""Our modules every command against the daemon loads: the command line, the client and
its connection (with the error mapping)."""

LOADS = {
    # command: (the daemon's services it calls — connecting asks the version —,
    #           our modules it loads besides ANY_COMMAND and pycontainerd.api)
    ("version",): ({"version", "introspection"}, {"pycontainerd.cli.version", "pycontainerd.version"}),
    ("images", "ls"): ({"version", "images", "content"}, {
        "pycontainerd.cli.images", "pycontainerd.cli.output", "pycontainerd.cli.progress", "pycontainerd.typeurl",
        "pycontainerd.records", "pycontainerd.records.images", "pycontainerd.descriptor",
        "pycontainerd.wire.convert", "pycontainerd.wire.records", "pycontainerd.wire.records.images",
        "pycontainerd.client.images", "pycontainerd.client.content", "pycontainerd.content",  # reading blobs
        "pycontainerd.images", "pycontainerd.images.walk", "pycontainerd.imagespec",  # size, platforms
        "pycontainerd.remotes", "pycontainerd.remotes.mediatypes", "pycontainerd.remotes.platforms",
    }),
    ("containers", "ls"): ({"version", "containers"}, {
        "pycontainerd.cli.containers", "pycontainerd.cli.output",
        "pycontainerd.cli.run", "pycontainerd.cli.specs",  # the `containers create` flags
        "pycontainerd.oci", "pycontainerd.oci.spec",  # `containers info`
        "pycontainerd.records", "pycontainerd.records.containers", "pycontainerd.typeurl", "pycontainerd.descriptor",
        "pycontainerd.wire.convert", "pycontainerd.wire.records", "pycontainerd.wire.records.containers",
    }),
}


RUN = """
import atexit, json, sys
out = sys.argv[1]
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
sys.argv = ["pyctr", *sys.argv[2:]]
from pycontainerd_cmd.ctr import main
main()
"""


def loaded_by(tmp_path, *args: str, address: str | None = None) -> tuple[set[str], subprocess.CompletedProcess]:
    """Run ``pyctr ARGS`` against ``address`` (default: a socket nobody serves)."""
    out = tmp_path / "modules.json"
    connect = ["--address", address, "--connect-timeout", "10"] if address else \
        ["--address", str(tmp_path / "nobody.sock"), "--connect-timeout", "0.2"]
    proc = subprocess.run([sys.executable, "-c", RUN, str(out), *connect, *args], capture_output=True, text=True,
                          timeout=60)
    return set(json.loads(out.read_text())), proc


def heavy_among(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


@pytest.fixture
def listed(daemon, busybox_image):
    """The daemon with an image and a container in it, for the listings to show."""
    ref = busybox_image.oci.ref
    pyctr(daemon, "images", "pull", "--plain-http", ref)
    pyctr(daemon, "containers", "create", ref, "imports-1")
    yield daemon
    pyctr(daemon, "containers", "rm", "imports-1", check=False)


@pytest.mark.integration
@pytest.mark.root
@pytest.mark.parametrize("command", list(LOADS), ids=" ".join)
def test_a_listing_loads_what_it_uses_and_no_more(tmp_path, listed, busybox_image, command):
    modules, proc = loaded_by(tmp_path, *command, address=listed.address)
    assert proc.returncode == 0, proc.stderr
    shown = {("images", "ls"): busybox_image.oci.ref, ("containers", "ls"): "imports-1"}.get(command, "Server:")
    assert shown in proc.stdout, proc.stdout  # it listed what is there: the whole success path ran
    services, ours = LOADS[command]
    prefix = "pycontainerd.api.services."
    assert {m[len(prefix):].split(".")[0] for m in modules if m.startswith(prefix)} == services
    loaded = {m for m in modules if m.split(".")[0] in ("pycontainerd", "pycontainerd_cmd")}
    loaded = {m for m in loaded if not m.startswith("pycontainerd.api")}
    assert sorted(loaded - ANY_COMMAND - ours) == [], "new on this path: list it in LOADS, with why"
    assert sorted((ANY_COMMAND | ours) - loaded) == [], "no longer loaded: take it out of LOADS"
    assert heavy_among(modules) == []


@pytest.mark.parametrize("command", [("version",), ("images", "ls"), ("containers", "ls"), ("c", "ls", "-q")])
def test_a_listing_command_loads_no_heavy_module(tmp_path, command):
    modules, proc = loaded_by(tmp_path, *command)
    assert proc.returncode == 1 and proc.stderr.startswith("pyctr: "), (proc.returncode, proc.stderr)
    assert "nobody.sock" in proc.stderr, proc.stderr  # it did try the daemon: the client was loaded
    assert "pycontainerd.client.connection" in modules and "grpc" in modules
    assert heavy_among(modules) == [], f"pyctr {' '.join(command)} imported {heavy_among(modules)}"


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
    code = ("import sys; import pycontainerd.log, pycontainerd.remotes.fetch, pycontainerd.images.walk; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('rich', 'httpx'))); "
            "import rich.progress; pycontainerd.log.get_logger('t').warning('still logs')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
    assert "event='still logs'" in proc.stderr
