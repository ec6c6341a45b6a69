"""A pytest plugin: a real pycontainerd for your tests, in one line.

Installed with the package (entry point ``pytest11``), it offers:

* ``pycontainerd_daemon`` — a daemon started on temporary ``--root``, ``--state`` and
  socket, stopped after the test, with whatever the test left running or mounted there
  (containers, shims, mounts, pod network namespaces: :func:`force_cleanup`) removed with
  its temp dirs, also when the test failed;
* ``pycontainerd_daemon_factory`` — ``make(config_text=None, extra_args=(), env=None)``
  for several daemons or custom configuration;
* ``pycontainerd_client`` — a connected sync :class:`pycontainerd.client.Client` on it;
* ``pycontainerd_registry`` — Debian's ``docker-registry`` on 127.0.0.1 with temporary
  storage (session scope), for pulling and pushing images; ``pycontainerd_registry.busybox()``
  builds a small runnable image (Debian's ``busybox-static`` in one layer, made with ``umoci``
  and pushed with ``skopeo``: tools we did not write) and returns its reference.

Example::

    def test_run(pycontainerd_client, pycontainerd_registry):
        ref = pycontainerd_registry.busybox()          # 127.0.0.1:PORT/library/busybox:latest
        image = pycontainerd_client.pull(ref, plain_http=True)

Running containers needs root (overlayfs mounts, runc), as with containerd. Building images
needs the Debian packages ``umoci skopeo busybox-static``.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import signal as signals
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx
import pytest

from .sysutil import files, libc
from .sysutil.mounts import MNT_DETACH


@dataclass
class Daemon:
    """A running daemon: ``address`` is its unix socket; ``root``/``state`` its dirs."""

    base: Path
    config: Path | None = None
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None

    @property
    def root(self) -> Path:
        return self.base / "root"

    @property
    def state(self) -> Path:
        return self.base / "state"

    @property
    def address(self) -> str:
        return str(self.base / "pycontainerd.sock")

    @property
    def log_path(self) -> Path:
        return self.base / "daemon.log"

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "pycontainerd_cmd.daemon", "--root", str(self.root),
               "--state", str(self.state), "--address", self.address, "--log-level", "debug"]
        if self.config is not None:
            cmd += ["--config", str(self.config)]
        return cmd + self.extra_args

    def start(self, wait: bool = True, timeout: float = 20.0) -> Daemon:
        self.base.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, **self.env}, start_new_session=True,
        )
        log.close()
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.proc.returncode}:\n{self.log()}")
            if os.path.exists(self.address):
                with grpc.insecure_channel(f"unix:{self.address}") as ch:
                    try:
                        grpc.channel_ready_future(ch).result(timeout=0.5)
                        return
                    except grpc.FutureTimeoutError:
                        pass
            time.sleep(0.05)
        raise TimeoutError(f"daemon not ready after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, sig: int = signals.SIGTERM, timeout: float = 20.0) -> int:
        """Signal the daemon and wait; SIGKILL the group if it does not exit in time."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signals.SIGKILL)
                self.proc.wait()
        rc = self.proc.returncode
        self.proc = None
        return rc

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        self.stop(signals.SIGKILL)

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(f"unix:{self.address}")


@dataclass
class Registry:
    """A running ``docker-registry``. ``host`` is ``127.0.0.1:PORT``, ``url`` is ``http://host``."""

    host: str
    root: Path
    proc: subprocess.Popen | None = None
    username: str | None = None
    password: str | None = None
    log_path: Path | None = None
    _pushed: set[str] = field(default_factory=set, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def auth(self) -> tuple[str, str] | None:
        """``(username, password)`` for an auth registry, else None."""
        if self.username is None or self.password is None:
            return None
        return (self.username, self.password)

    def client(self, **kw) -> httpx.Client:
        """A sync httpx client for this registry (with its credentials, if any)."""
        return httpx.Client(base_url=self.url, auth=self.auth, timeout=30, **kw)

    def busybox(self, name: str = "library/busybox:latest") -> str:
        """Build (once per registry and name) and push a small runnable image: ``/bin/busybox``
        from Debian's ``busybox-static`` with the applets of :data:`BUSYBOX_APPLETS` as
        symlinks, ``CMD ["sh"]``, this machine's platform. Returns ``HOST/name``; pull it over
        plain HTTP (``plain_http=True``, ``--plain-http``)."""
        ref = f"{self.host}/{name}"
        if ref not in self._pushed:
            work = Path(tempfile.mkdtemp(prefix="pcd-busybox-"))
            try:
                layout = work / "layout"
                build_image_layout(layout, "image", add_busybox, ["--config.cmd", "sh"])
                push_layout(layout, "image", ref, self)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            self._pushed.add(ref)
        return ref

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)


# --- cleanup: whatever a test left behind under its temporary dirs ----------------------------

NETNS_DIR = "/var/run/netns"


def netns_pins() -> set[str]:
    """The names of the network namespaces pinned under ``/var/run/netns`` now."""
    try:
        return set(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return set()


def mounts_under(base: str) -> list[str]:
    """Mount points at ``base`` or below it (``/proc/self/mountinfo``), outermost first."""
    prefix = base.rstrip("/") + "/"
    out = []
    for line in files.read_text("/proc/self/mountinfo").splitlines():
        mp = line.split()[4].encode().decode("unicode_escape")
        if mp == base or mp.startswith(prefix):
            out.append(mp)
    return out


def processes_mentioning(text: str) -> list[int]:
    """Pids (not this process) whose command line contains ``text``."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            if text.encode() in files.read(f"/proc/{d}/cmdline"):
                pids.append(int(d))
        except OSError:
            continue
    return pids


def processes_working_in(base: str) -> list[int]:
    """Pids (not this process) whose working directory is ``base`` or below it (a shim
    works in its bundle)."""
    prefix = base.rstrip("/") + "/"
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            cwd = os.readlink(f"/proc/{d}/cwd").removesuffix(" (deleted)")
            if cwd == base or cwd.startswith(prefix):
                pids.append(int(d))
    return pids


def process_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        return files.read_text(f"/proc/{pid}/stat").rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _net_inodes_under(pids: list[int]) -> set[int]:
    """Network-namespace inodes of ``pids`` and all their descendants."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                ppid = int(files.read_text(f"/proc/{d}/stat").rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d))
    inodes, todo = set(), list(pids)
    while todo:
        pid = todo.pop()
        with contextlib.suppress(OSError):
            inodes.add(os.stat(f"/proc/{pid}/ns/net").st_ino)
        todo += children.get(pid, [])
    return inodes


def pins_of(base: Path, candidates: set[str]) -> set[str]:
    """Which of the pod netns pins ``candidates`` the daemon at ``base`` made: a process of
    its tree (shims, pause, containers) is in it, or its files under ``base`` name it (the
    sandbox's netns path in its metadata). Other runtimes on this machine pin pod namespaces
    too, concurrently: never touch theirs."""
    if not candidates:
        return set()
    inodes = _net_inodes_under(processes_mentioning(_inside(base)))
    mine = set()
    for name in candidates:
        with contextlib.suppress(OSError):
            if os.stat(os.path.join(NETNS_DIR, name)).st_ino in inodes:
                mine.add(name)
    rest = candidates - mine
    if not rest:
        return mine
    named = subprocess.run(["grep", "-rhoaF", "--exclude-dir=snapshots", "--exclude-dir=*content*",
                            *(x for n in rest for x in ("-e", n)), str(base)],
                           capture_output=True, text=True, errors="replace").stdout.split()
    return mine | (rest & set(named))


def _inside(base: Path) -> str:
    """``base`` with a trailing slash: what names a path below it and not ``<base>0``."""
    return str(base).rstrip("/") + "/"


def _runc_containers(base: Path) -> list[tuple[str, str]]:
    """``(runc root, container id)`` of every runc container whose state is under ``base``
    (our shims keep runc's root at ``<state>/runc/<namespace>``)."""
    runc = shutil.which("runc")
    if runc is None:
        return []
    out = []
    for pattern in ("runc/*", "*/runc/*", "*/*/runc/*"):
        for root in sorted(base.glob(pattern)):
            ids = subprocess.run([runc, "--root", str(root), "list", "-q"], capture_output=True,
                                 text=True).stdout.split()
            out += [(str(root), id) for id in ids]
    return out


def force_cleanup(base: Path, pins_before: set[str] | None = None) -> list[str]:
    """Remove what a test's daemon left under ``base`` once the daemon is stopped, even when
    the test failed half way: its runc containers (``runc delete --force``), every process
    whose command line names a path under ``base`` or that works there (shims, runc, a
    daemon that would not stop), every mount under ``base`` (innermost first, detached), and the pod netns pins
    the daemon made since ``pins_before`` was taken (:func:`netns_pins`; None: none made).
    Returns what had to be removed (empty when the test had cleaned up itself)."""
    base = Path(base)
    leftovers = []
    mine = pins_of(base, {n for n in netns_pins() - pins_before if n.startswith("cni-")}) \
        if pins_before is not None else set()
    for root, id in _runc_containers(base):
        leftovers.append(f"container {id}")
        subprocess.run(["runc", "--root", root, "delete", "--force", id], capture_output=True)
    for pid in sorted({*processes_mentioning(_inside(base)), *processes_working_in(str(base))}):
        leftovers.append(f"process {pid}")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signals.SIGKILL)
    for mp in sorted(mounts_under(str(base)), key=len, reverse=True):
        leftovers.append(f"mount {mp}")
        libc.umount2(mp.encode(), MNT_DETACH)
    for name in sorted(mine):
        leftovers.append(f"netns {name}")
        path = os.path.join(NETNS_DIR, name)
        libc.umount2(path.encode(), MNT_DETACH)
        with contextlib.suppress(OSError):
            os.unlink(path)
    return leftovers


# --- images built with real tools ---------------------------------------------------------

BUSYBOX_APPLETS = ("sh", "true", "sleep", "echo", "cat", "ls")
"""Symlinks (``bin/<name> -> busybox``) that :func:`add_busybox` makes besides ``bin/busybox``."""

_DEB_TO_OCI = {
    # dpkg --print-architecture -> (GOARCH, variant)
    "amd64": ("amd64", ""),
    "arm64": ("arm64", "v8"),
    "armhf": ("arm", "v7"),
    "armel": ("arm", "v6"),
    "i386": ("386", ""),
    "ppc64el": ("ppc64le", ""),
    "s390x": ("s390x", ""),
    "riscv64": ("riscv64", ""),
    "mips64el": ("mips64le", ""),
}
_MACHINE_TO_DEB = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "armhf", "i686": "i386", "ppc64le": "ppc64el"}


def native_platform() -> tuple[str, str, str]:
    """``(os, architecture, variant)`` of this machine in OCI terms (variant may be ``""``)."""
    try:
        deb = subprocess.run(
            ["dpkg", "--print-architecture"], check=True, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        deb = _MACHINE_TO_DEB.get(platform.machine(), platform.machine())
    arch, variant = _DEB_TO_OCI.get(deb, (deb, ""))
    return "linux", arch, variant


def require_tool(name: str, package: str) -> str:
    """The path of the program ``name``; fails the test naming the Debian ``package``."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: apt-get install {package} (the project's install step does)",
                    pytrace=False)
    return path


def run_tool(*argv: str, cwd: Path | None = None) -> str:
    """Run a program; its stdout, or the test fails with its output."""
    r = subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        pytest.fail(f"{' '.join(argv)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}", pytrace=False)
    return r.stdout


def add_busybox(rootfs: Path, applets: Sequence[str] = BUSYBOX_APPLETS) -> None:
    """Put Debian's static ``/bin/busybox`` into ``rootfs/bin`` with ``applets`` as symlinks."""
    busybox = Path("/bin/busybox")
    if not busybox.exists():
        pytest.fail("/bin/busybox is missing: apt-get install busybox-static", pytrace=False)
    bindir = rootfs / "bin"
    bindir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(busybox, bindir / "busybox")
    os.chmod(bindir / "busybox", 0o755)
    for applet in applets:
        os.symlink("busybox", bindir / applet)


def build_image_layout(layout: Path, tag: str, fill: Callable[[Path], None], config: Sequence[str] = (), *,
                       platform_: tuple[str, str, str] | None = None) -> Path:
    """Add image ``tag`` to the OCI layout ``layout`` (made if missing) with ``umoci``: one
    layer holding what ``fill(rootfs)`` puts in an empty root file system, then ``umoci
    config`` with ``config`` (e.g. ``--config.cmd sh``) for ``platform_`` (default: this
    machine's). Returns ``layout``."""
    umoci = require_tool("umoci", "umoci")
    os_, arch, _variant = platform_ or native_platform()
    rootless = () if os.geteuid() == 0 else ("--rootless",)
    if not (layout / "index.json").exists():
        run_tool(umoci, "init", "--layout", str(layout))
    run_tool(umoci, "new", "--image", f"{layout}:{tag}")
    bundle = layout.parent / f"bundle-{tag}"
    try:
        run_tool(umoci, "unpack", *rootless, "--image", f"{layout}:{tag}", str(bundle))
        fill(bundle / "rootfs")
        run_tool(umoci, "repack", *rootless, "--image", f"{layout}:{tag}", str(bundle))
    finally:
        shutil.rmtree(bundle, ignore_errors=True)
    run_tool(umoci, "config", "--image", f"{layout}:{tag}", "--os", os_, "--architecture", arch, *config)
    return layout


def push_layout(layout: Path, tag: str, ref: str, registry: Registry | None = None, *skopeo_args: str) -> None:
    """Push image ``tag`` of the OCI layout to ``ref`` (``HOST/repository:tag``) with
    ``skopeo copy`` over plain HTTP, with the registry's credentials when it has some."""
    skopeo = require_tool("skopeo", "skopeo")
    creds = ("--dest-creds", f"{registry.username}:{registry.password}") if registry and registry.auth else ()
    run_tool(skopeo, "copy", "--quiet", "--dest-tls-verify=false", *creds, *skopeo_args,
             f"oci:{layout}:{tag}", f"docker://{ref}")


def _registry_binary() -> str:
    path = shutil.which("docker-registry") or (
        "/usr/bin/docker-registry" if os.path.exists("/usr/bin/docker-registry") else None
    )
    if path is None:
        pytest.fail(
            "Debian's docker-registry is not installed: apt-get install docker-registry "
            "(the project's install step does)",
            pytrace=False,
        )
    return path


def _registry_answers(reg: Registry, netns: str) -> bool:
    if netns:  # its loopback is not ours: ask from inside the namespace
        probe = subprocess.run(["nsenter", f"--net={netns}", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                f"{reg.url}/v2/"], capture_output=True, text=True)
        return probe.stdout in ("200", "401")
    try:
        return httpx.get(f"{reg.url}/v2/", timeout=2).status_code in (200, 401)
    except httpx.TransportError:
        return False


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _htpasswd_line(username: str, password: str) -> str:
    try:
        import bcrypt
    except ImportError:  # pragma: no cover - depends on the environment
        pytest.fail("the bcrypt package is missing: pip install -e '.[dev]'", pytrace=False)
    # 2a: the prefix every htpasswd reader knows; cost 4 keeps each request cheap.
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4, prefix=b"2a")).decode()
    return f"{username}:{hashed}\n"


def start_registry(*, username: str | None = None, password: str | None = None, attempts: int = 3,
                   storage: Path | None = None, port: int = 0, netns: str = "") -> Registry:
    """Start a ``docker-registry`` with its own config in a fresh temp dir.

    With ``username``/``password`` the registry requires htpasswd basic auth. ``storage`` keeps
    the blobs in a folder that outlives the registry (a cache; default: inside the temp dir).
    ``netns`` (a pinned network namespace path) runs it inside that namespace, on its loopback,
    on ``port`` (default: a free port). Returns once ``/v2/`` answers (200, or 401 for an auth
    registry). The caller must ``stop()`` it.
    """
    binary = _registry_binary()
    last_error = ""
    for _ in range(attempts):
        root = Path(tempfile.mkdtemp(prefix="pcd-registry-"))
        bound = port or _free_port()
        config = [
            "version: 0.1",
            "log:",
            "  level: warn",
            "  accesslog:",
            "    disabled: true",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {storage or root / 'data'}",
            "  delete:",
            "    enabled: true",
            "http:",
            f"  addr: 127.0.0.1:{bound}",
            "  headers:",
            "    X-Content-Type-Options: [nosniff]",
        ]
        if username is not None:
            assert password is not None
            (root / "htpasswd").write_text(_htpasswd_line(username, password))
            config += ["auth:", "  htpasswd:", "    realm: basic-realm", f"    path: {root / 'htpasswd'}"]
        (root / "config.yml").write_text("\n".join(config) + "\n")
        log_path = root / "registry.log"
        with open(log_path, "wb") as log_file:
            proc = subprocess.Popen(
                [*(["nsenter", f"--net={netns}"] if netns else []), binary, "serve", str(root / "config.yml")],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        reg = Registry(
            host=f"127.0.0.1:{bound}", root=root, proc=proc, username=username, password=password, log_path=log_path
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            if _registry_answers(reg, netns):
                return reg
            time.sleep(0.05)
        last_error = log_path.read_text(errors="replace")[-2000:]
        reg.stop()
    pytest.fail(f"docker-registry did not start after {attempts} attempts; last log:\n{last_error}", pytrace=False)


@pytest.fixture
def pycontainerd_daemon_factory(tmp_path_factory):
    """``make(config_text=None, extra_args=(), env=None, start=True, base=None) -> Daemon``;
    after the test every daemon made is stopped, what it left (containers, shims, mounts,
    pod netns: :func:`force_cleanup`) is removed, and so is its directory."""
    started: list[Daemon] = []

    def make(config_text: str | None = None, extra_args=(), env=None, start: bool = True, base=None) -> Daemon:
        base = base or tmp_path_factory.mktemp("pcd")
        cfg = None
        if config_text is not None:
            cfg = base / "config.toml"
            cfg.write_text(config_text)
        d = Daemon(base=base, config=cfg, extra_args=list(extra_args), env=dict(env or {}))
        started.append(d)
        if start:
            d.start()
        return d

    pins = netns_pins()
    yield make
    for d in started:
        d.stop()
    for d in started:
        force_cleanup(d.base, pins)
        shutil.rmtree(d.base, ignore_errors=True)


@pytest.fixture
def pycontainerd_daemon(pycontainerd_daemon_factory) -> Daemon:
    """One running daemon with the default configuration on temporary dirs."""
    return pycontainerd_daemon_factory()


@pytest.fixture
def pycontainerd_client(pycontainerd_daemon):
    """A sync client connected to ``pycontainerd_daemon`` (namespace ``default``)."""
    from pycontainerd.client import Client

    client = Client(pycontainerd_daemon.address)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def pycontainerd_registry():
    """A real registry (Debian's docker-registry) on 127.0.0.1, without auth; its
    :meth:`Registry.busybox` pushes a small runnable image in one call."""
    reg = start_registry()
    try:
        yield reg
    finally:
        reg.stop()
