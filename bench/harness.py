"""Side-by-side benchmark harness: pycontainerd and Debian's containerd in one run.

Every benchmark script (``bench/pull.py``, ``run.py``, …) does the same thing::

    with Bench("run", args) as b:            # temp dirs under --workdir, cleaned up at exit
        ours, theirs = b.start_both()        # our daemon and a real containerd, fresh roots
        img = b.busybox()                    # a busybox image in a local docker-registry
        for side in b.alternate(ours, theirs, n):   # interleaved: ABBA… order
            b.sample("ctr run --rm", side, side.timed_ctr("run", "--rm", img, id, "true"))
        b.report()                           # table (ours, containerd, ratio) + JSON

Both daemons get their own ``--root``/``--state``/socket under one temp dir on the same
disk (``--workdir``, default ``/var/tmp``: not a tmpfs, like real ``/var/lib``), and both
are driven only through Debian's ``ctr`` — the client of record — so every figure includes
the same client cost. Absolute times drift on shared machines: only ratios measured in
the same run mean anything (ANCHORS.md), so samples of the two sides are interleaved.

Results go to ``bench/results/<name>-<UTC time>.json`` (gitignored): every sample, the
summary (median, p90, min, max), the machine, and the versions. Nothing here asserts a
figure (DESIGN.md §7).

Images are built offline from files on this machine with ``umoci`` and pushed with
``skopeo`` (the test helpers in ``tests/support``): busybox, and a multi-layer "distro-like"
image made of copies of ``/usr/lib/python3*``, ``/usr/share/perl`` … (see
:func:`Bench.distro_image`).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.support.containerd import Containerd
from tests.support.daemon import Daemon

RESULTS = REPO / "bench" / "results"
CTR = shutil.which("ctr") or "ctr"
MiB = 1 << 20


# --- statistics ------------------------------------------------------------------------------


def percentile(xs: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) — no interpolation, a value that was seen."""
    if not xs:
        return float("nan")
    s = sorted(xs)
    k = max(0, min(len(s) - 1, int(-(-q * len(s) // 100)) - 1))
    return s[k]


def summarize(xs: Sequence[float]) -> dict:
    if not xs:
        return {"n": 0}
    return {"n": len(xs), "median": statistics.median(xs), "p90": percentile(xs, 90), "min": min(xs),
            "max": max(xs), "mean": statistics.fmean(xs)}


# --- processes and memory -----------------------------------------------------------------------


def mem_kib(pid: int) -> dict[str, int]:
    """``{"rss": KiB, "pss": KiB, "uss": KiB}`` of one process (``/proc/PID/smaps_rollup``)."""
    out = {"rss": 0, "pss": 0, "uss": 0}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                key, _, rest = line.partition(":")
                v = rest.split()
                if not v:
                    continue
                if key == "Rss":
                    out["rss"] = int(v[0])
                elif key == "Pss":
                    out["pss"] = int(v[0])
                elif key in ("Private_Clean", "Private_Dirty"):
                    out["uss"] += int(v[0])
    except OSError:
        pass
    return out


def children(pid: int) -> list[int]:
    """Direct children of ``pid``."""
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        for c in children(todo.pop()):
            out.append(c)
            todo.append(c)
    return out


def _stat_field(pid: int, index: int) -> int:
    """Field ``index`` of ``/proc/PID/stat`` counted after the command (0 = state)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[index])
    except (OSError, ValueError, IndexError):
        return 0


def ppid(pid: int) -> int:
    return _stat_field(pid, 1)


def sid(pid: int) -> int:
    return _stat_field(pid, 3)


def cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def drop_caches() -> bool:
    """``sync`` and drop the page cache (root only); False when refused."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


# --- one daemon --------------------------------------------------------------------------------


@dataclass
class Side:
    """One daemon under test, driven through Debian's ``ctr``."""

    name: str  # "ours" | "containerd"
    base: Path
    handle: Daemon | Containerd
    namespace: str = "default"
    ctr_env: dict[str, str] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return self.handle.address

    @property
    def pid(self) -> int:
        proc = self.handle.proc
        return proc.pid if proc is not None else 0

    def argv(self, *args: str) -> list[str]:
        return [CTR, "--address", self.address, "--namespace", self.namespace, *args]

    def ctr(self, *args: str, check: bool = True, timeout: float = 600, input: bytes | None = None,
            ) -> subprocess.CompletedProcess:
        p = subprocess.run(self.argv(*args), capture_output=True, timeout=timeout, input=input,
                           stdin=None if input is not None else subprocess.DEVNULL, env=self.env(), check=False)
        if check and p.returncode != 0:
            raise RuntimeError(f"[{self.name}] ctr {' '.join(args)} exited {p.returncode}: "
                               f"{p.stderr.decode(errors='replace').strip()[-2000:]}")
        return p

    def timed_ctr(self, *args: str, check: bool = True, timeout: float = 600) -> float:
        t0 = time.perf_counter()
        self.ctr(*args, check=check, timeout=timeout)
        return time.perf_counter() - t0

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONTAINERD_")}
        env.update(self.ctr_env)
        return env

    # memory ---------------------------------------------------------------------------------

    def daemon_mem(self) -> dict[str, int]:
        """The daemon's own memory (KiB) plus helper processes it keeps in its session
        (our shim zygote). Shims are not counted here even when a helper is their parent:
        they run in sessions of their own (``setsid``), and are counted per container."""
        total = {"rss": 0, "pss": 0, "uss": 0, "processes": 0}
        if not self.pid:
            return total
        session = sid(self.pid)
        for pid in [self.pid, *(p for p in descendants(self.pid) if sid(p) == session)]:
            m = mem_kib(pid)
            for k in ("rss", "pss", "uss"):
                total[k] += m[k]
            total["processes"] += 1
        return total

    def task_pids(self) -> dict[str, int]:
        """``{container id: init pid}`` of the running tasks (``ctr tasks ls``)."""
        out = {}
        for line in self.ctr("tasks", "ls").stdout.decode().splitlines()[1:]:
            parts = line.split()
            if len(parts) >= 3 and parts[1].isdigit():
                out[parts[0]] = int(parts[1])
        return out

    def task_status(self) -> dict[str, str]:
        out = {}
        for line in self.ctr("tasks", "ls").stdout.decode().splitlines()[1:]:
            parts = line.split()
            if len(parts) >= 3:
                out[parts[0]] = parts[2]
        return out

    def shim_pids(self) -> list[int]:
        """The shims of the running tasks: the parent (subreaper) of each task's init."""
        return sorted({ppid(p) for p in self.task_pids().values() if p} - {0, 1})

    # cleanup --------------------------------------------------------------------------------

    def remove_everything(self) -> None:
        """Kill and delete every task and container of every namespace (best effort)."""
        try:
            namespaces = [ln.split()[0] for ln in
                          self.ctr("namespaces", "ls", check=False, timeout=30).stdout.decode().splitlines()[1:]
                          if ln.split()]
        except (subprocess.TimeoutExpired, OSError):
            return
        for ns in namespaces or [self.namespace]:
            side = Side(self.name, self.base, self.handle, ns)
            try:
                for line in side.ctr("tasks", "ls", "-q", check=False, timeout=30).stdout.decode().split():
                    side.ctr("tasks", "rm", "-f", line, check=False, timeout=30)
                ids = side.ctr("containers", "ls", "-q", check=False, timeout=30).stdout.decode().split()
                for i in range(0, len(ids), 50):
                    side.ctr("containers", "rm", *ids[i:i + 50], check=False, timeout=60)
            except (subprocess.TimeoutExpired, OSError):
                pass

    def stop(self) -> None:
        self.handle.stop()


# --- the bench -----------------------------------------------------------------------------------


@dataclass
class Row:
    figure: str
    unit: str
    ours: float | None
    containerd: float | None
    note: str = ""
    lower_is_better: bool = True

    @property
    def ratio(self) -> float | None:
        if self.ours is None or self.containerd in (None, 0):
            return None
        return self.ours / self.containerd


def base_parser(description: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer repetitions, smaller images")
    ap.add_argument("--workdir", default="/var/tmp", help="where the daemons' roots live (a real disk)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (daemon logs) for inspection")
    ap.add_argument("--no-json", action="store_true", help="do not write bench/results/*.json")
    return ap


class Bench:
    """See the module docstring. ``args`` comes from :func:`base_parser` (plus the
    script's own options)."""

    def __init__(self, name: str, args: argparse.Namespace) -> None:
        self.name = name
        self.args = args
        self.quick = bool(getattr(args, "quick", False))
        self.rows: list[Row] = []
        self.samples: dict[str, dict[str, list[float]]] = {}
        self.extra: dict[str, object] = {}
        self.sides: list[Side] = []
        self._registry = None
        self._images: dict[str, str] = {}
        self._counter = 0
        self.base = Path(tempfile.mkdtemp(prefix=f"pcd-bench-{name}-", dir=args.workdir))
        self.started = time.time()

    # context ----------------------------------------------------------------------------------

    def __enter__(self) -> Bench:
        if os.geteuid() != 0:
            raise SystemExit("the benchmarks need root (mounts, runc), like the integration tests")
        signal.signal(signal.SIGTERM, _interrupt)  # clean up on `kill` too
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for side in list(self.sides):
            self.stop(side)
        if self._registry is not None:
            self._registry.stop()
            self._registry = None
        _kill_strays(self.base)
        _unmount_under(self.base)
        if getattr(self.args, "keep", False):
            print(f"kept {self.base}")
        else:
            shutil.rmtree(self.base, ignore_errors=True)

    # ids ---------------------------------------------------------------------------------------

    def new_id(self, prefix: str = "b") -> str:
        self._counter += 1
        return f"{prefix}{os.getpid()}-{self._counter}"

    # daemons ----------------------------------------------------------------------------------

    def start_ours(self, tag: str = "", env: dict[str, str] | None = None, name: str = "ours") -> Side:
        base = self.base / f"ours{tag}-{self._next()}"
        d = Daemon(base=base, extra_args=["--log-level", "info"], env=dict(env or {}))
        d.start(timeout=60)
        side = Side(name, base, d)
        self.sides.append(side)
        return side

    def start_containerd(self, tag: str = "") -> Side:
        base = self.base / f"containerd{tag}-{self._next()}"
        c = Containerd(base=base).start(timeout=60)
        side = Side("containerd", base, c)
        self.sides.append(side)
        return side

    def start_both(self) -> tuple[Side, Side]:
        return self.start_ours(), self.start_containerd()

    def stop(self, side: Side, remove_dirs: bool = False) -> None:
        """Remove its tasks and containers, stop it, kill what it left, unmount its dirs."""
        if side in self.sides:
            self.sides.remove(side)
        if side.handle.proc is not None and side.handle.proc.poll() is None:
            side.remove_everything()
        side.stop()
        _kill_strays(side.base)
        _unmount_under(side.base)
        if remove_dirs:
            shutil.rmtree(side.base, ignore_errors=True)

    def _next(self) -> int:
        self._counter += 1
        return self._counter

    # registry and images ------------------------------------------------------------------------

    @property
    def registry(self):
        if self._registry is None:
            from tests.support.registry import start_registry

            self._registry = start_registry()
        return self._registry

    def busybox(self) -> str:
        """Reference of a busybox image (one gzip layer) in the local registry."""
        if "busybox" not in self._images:
            from tests.support.registry import build_and_push_busybox

            imgs = build_and_push_busybox(self.registry, self.base / "busybox-build")
            self._images["busybox"] = imgs.ref
            shutil.rmtree(self.base / "busybox-build", ignore_errors=True)
        return self._images["busybox"]

    def distro_image(self, quick: bool | None = None) -> tuple[str, dict]:
        """A multi-layer image from this machine's files, like a debootstrap minbase image
        (ANCHORS: 48.7 MiB gzip, 126.7 MiB, 6,655 files). Returns ``(ref, description)``."""
        quick = self.quick if quick is None else quick
        key = "distro-quick" if quick else "distro"
        if key not in self._images:
            ref, desc = build_distro_image(self.registry, self.base / f"{key}-build", quick)
            self._images[key] = ref
            self.extra[f"image:{key}"] = desc
        return self._images[key], self.extra[f"image:{key}"]  # type: ignore[return-value]

    # samples and the table -------------------------------------------------------------------------

    @staticmethod
    def alternate(a: Side, b: Side, n: int) -> Iterator[tuple[int, Side]]:
        """``(i, side)`` for ``n`` rounds of both sides, order ABBA ABBA… (drift cancels)."""
        for i in range(n):
            for side in ((a, b) if i % 2 == 0 else (b, a)):
                yield i, side

    def sample(self, figure: str, side: Side | str, value: float) -> None:
        name = side if isinstance(side, str) else side.name
        self.samples.setdefault(figure, {}).setdefault(name, []).append(value)

    def row(self, figure: str, unit: str, ours: float | None, containerd: float | None, note: str = "",
            lower_is_better: bool = True) -> Row:
        r = Row(figure, unit, ours, containerd, note, lower_is_better)
        self.rows.append(r)
        return r

    def row_from_samples(self, figure: str, unit: str = "s", scale: float = 1.0, note: str = "",
                         lower_is_better: bool | None = None) -> Row:
        """The medians of a figure's samples; rates (``…/s``) are higher-is-better unless told."""
        s = self.samples.get(figure, {})
        med = {k: statistics.median(v) * scale if v else None for k, v in s.items()}
        n = max((len(v) for v in s.values()), default=0)
        return self.row(figure, unit, med.get("ours"), med.get("containerd"),
                        (note + "; " if note else "") + f"median of {n}",
                        (not unit.endswith("/s")) if lower_is_better is None else lower_is_better)

    def report(self) -> dict:
        print()
        print(format_table(self.name, self.rows))
        result = {
            "benchmark": self.name,
            "quick": self.quick,
            "started": _dt.datetime.fromtimestamp(self.started, _dt.UTC).isoformat(),
            "duration_s": round(time.time() - self.started, 1),
            "machine": machine(),
            "rows": [{"figure": r.figure, "unit": r.unit, "ours": r.ours, "containerd": r.containerd,
                      "ratio": r.ratio, "note": r.note} for r in self.rows],
            "samples": {fig: {side: {"values": v, **summarize(v)} for side, v in by.items()}
                        for fig, by in self.samples.items()},
            "extra": self.extra,
        }
        if not getattr(self.args, "no_json", False):
            RESULTS.mkdir(parents=True, exist_ok=True)
            stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ")
            path = RESULTS / f"{self.name}{'-quick' if self.quick else ''}-{stamp}.json"
            path.write_text(json.dumps(result, indent=2, default=str) + "\n")
            print(f"\nresults: {path.relative_to(REPO)}")
        return result


def _fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "—"
    if unit == "s" and v < 1:
        return f"{v * 1000:.0f} ms"
    if unit == "s":
        return f"{v:.2f} s"
    if unit == "ms":
        return f"{v:.2f} ms" if v < 10 else f"{v:.1f} ms"
    if unit == "MiB":
        return f"{v:.1f} MiB"
    if unit == "ops/s":
        return f"{v:.0f} ops/s"
    return f"{v:.3g} {unit}"


def format_table(title: str, rows: Iterable[Row]) -> str:
    rows = list(rows)
    head = ("figure", "ours", "containerd", "ours/ctrd", "note")
    body = [(r.figure, _fmt(r.ours, r.unit), _fmt(r.containerd, r.unit),
             "—" if r.ratio is None else f"{r.ratio:.2f}" + ("" if r.lower_is_better else " (higher=better)"),
             r.note) for r in rows]
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
    line = "  ".join("-" * w for w in widths)
    out = [f"== {title} ==", "  ".join(h.ljust(w) for h, w in zip(head, widths)), line]
    for b in body:
        out.append("  ".join([b[0].ljust(widths[0]), b[1].rjust(widths[1]), b[2].rjust(widths[2]),
                              b[3].rjust(widths[3]), b[4]]))
    return "\n".join(out)


def machine() -> dict:
    def version(argv: list[str]) -> str:
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"

    cg = "v2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "v1"
    return {"kernel": platform.release(), "cpus": os.cpu_count(), "python": sys.version.split()[0],
            "cgroups": cg, "containerd": version(["containerd", "--version"]), "runc": version(["runc", "--version"]),
            "ctr": version([CTR, "--version"]), "load_at_start": os.getloadavg()}


# --- images ----------------------------------------------------------------------------------------

# (layer name, host paths): tens of MiB, thousands of files, like a distro base image.
DISTRO_LAYERS = [
    ("python", ["/usr/lib/python3.11", "/usr/lib/python3.12", "/usr/lib/python3.13"]),
    ("perl", ["/usr/share/perl", "/usr/lib/x86_64-linux-gnu/perl", "/usr/lib/aarch64-linux-gnu/perl",
              "/usr/share/perl5"]),
    ("data", ["/usr/share/zoneinfo", "/usr/share/i18n", "/usr/share/mime"]),
]
QUICK_LAYERS = [("data", ["/usr/share/zoneinfo", "/usr/share/mime"])]


def build_distro_image(registry, work: Path, quick: bool) -> tuple[str, dict]:
    """Layers = GNU ``tar`` of host directories (+ a busybox layer on top so the image
    runs), assembled with ``umoci raw add-layer`` (which gzips them), pushed with skopeo."""
    from tests.support.registry import _run, native_platform

    work.mkdir(parents=True)
    os_, arch, _variant = native_platform()
    layout = work / "layout"
    tag = "quick" if quick else "full"
    _run("umoci", "init", "--layout", str(layout))
    _run("umoci", "new", "--image", f"{layout}:{tag}")
    desc: dict = {"layers": []}
    for name, candidates in (QUICK_LAYERS if quick else DISTRO_LAYERS):
        paths = [p.lstrip("/") for p in candidates if os.path.isdir(p)]
        if not paths:
            continue
        tar = work / f"{name}.tar"
        subprocess.run(["tar", "-C", "/", "--numeric-owner", "-cf", str(tar), *paths], check=True,
                       stderr=subprocess.DEVNULL)
        files = int(subprocess.run(["tar", "-tf", str(tar)], capture_output=True, check=True).stdout.count(b"\n"))
        desc["layers"].append({"name": name, "paths": paths, "tar_bytes": tar.stat().st_size, "entries": files})
        _run("umoci", "raw", "add-layer", "--image", f"{layout}:{tag}", str(tar))
        tar.unlink()
    # busybox on top, so that `ctr run` works with this image too
    bb = work / "bb"
    (bb / "bin").mkdir(parents=True)
    shutil.copy2("/bin/busybox", bb / "bin" / "busybox")
    for applet in ("sh", "true", "sleep", "ls", "cat"):
        os.symlink("busybox", bb / "bin" / applet)
    tar = work / "busybox.tar"
    subprocess.run(["tar", "-C", str(bb), "--numeric-owner", "-cf", str(tar), "bin"], check=True)
    desc["layers"].append({"name": "busybox", "tar_bytes": tar.stat().st_size, "entries": 1 + 1 + 5})
    _run("umoci", "raw", "add-layer", "--image", f"{layout}:{tag}", str(tar))
    _run("umoci", "config", "--image", f"{layout}:{tag}", "--config.cmd", "sh", "--os", os_,
         "--architecture", arch)
    ref = f"{registry.host}/bench/distro:{tag}"
    _run("skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"oci:{layout}:{tag}", f"docker://{ref}")
    # the gzip sizes as the registry has them
    index = json.loads((layout / "index.json").read_text())
    mdigest = next(m["digest"] for m in index["manifests"]
                   if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag)
    manifest = json.loads((layout / "blobs" / "sha256" / mdigest.split(":", 1)[1]).read_text())
    desc["gzip_bytes"] = sum(layer["size"] for layer in manifest["layers"])
    desc["tar_bytes"] = sum(layer["tar_bytes"] for layer in desc["layers"])
    desc["entries"] = sum(layer["entries"] for layer in desc["layers"])
    desc["layer_blobs"] = [str(layout / "blobs" / "sha256" / layer["digest"].split(":", 1)[1])
                           for layer in manifest["layers"]]
    desc["summary"] = (f"{len(manifest['layers'])} layers, {desc['gzip_bytes'] / MiB:.1f} MiB gzip, "
                       f"{desc['tar_bytes'] / MiB:.1f} MiB tar, {desc['entries']} entries")
    shutil.rmtree(bb, ignore_errors=True)
    return ref, desc


# --- cleanup ----------------------------------------------------------------------------------------


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _kill_strays(base: Path) -> None:
    """SIGKILL every process whose command line or working directory is under ``base``
    (shims of a daemon rooted there — a shim's cwd is its bundle — and what they run)."""
    needle = str(base)
    me = os.getpid()

    def ours(pid: int) -> bool:
        try:
            if os.readlink(f"/proc/{pid}/cwd").startswith(needle + "/"):
                return True
        except OSError:
            pass
        return any(needle in a for a in cmdline(pid))

    strays = [int(d) for d in os.listdir("/proc") if d.isdigit() and int(d) != me and ours(int(d))]
    # what they run (container processes under a shim) first, then the shims themselves
    for pid in [p for s in strays for p in reversed(descendants(s))] + strays:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _unmount_under(base: Path) -> None:
    try:
        with open("/proc/self/mountinfo") as f:
            points = [ln.split()[4] for ln in f]
    except OSError:
        return
    for mp in reversed(points):
        mp = mp.replace("\\040", " ")
        if mp.startswith(str(base) + "/"):
            subprocess.run(["umount", "-l", mp], capture_output=True, check=False)


# --- parallel helper -----------------------------------------------------------------------------------


def run_parallel(argvs: Sequence[Sequence[str]], env: dict[str, str] | None = None,
                 timeout: float = 300) -> tuple[float, list[subprocess.CompletedProcess]]:
    """Start every command at once, wait for all; ``(seconds until the last exited, results)``."""
    results: list[subprocess.CompletedProcess | None] = [None] * len(argvs)
    t0 = time.perf_counter()
    procs = [subprocess.Popen(list(a), stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                              env=env) for a in argvs]

    def wait(i: int, p: subprocess.Popen) -> None:
        out, err = p.communicate(timeout=timeout)
        results[i] = subprocess.CompletedProcess(p.args, p.returncode, out, err)

    threads = [threading.Thread(target=wait, args=(i, p)) for i, p in enumerate(procs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, [r for r in results if r is not None]
