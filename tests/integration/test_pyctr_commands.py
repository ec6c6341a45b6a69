"""Every ``pyctr`` command the other pyctr suites leave out (or only touch), against a real
daemon: ``--format json`` and ``-q`` on every listing, ``content active`` with a real
unfinished write, ``images mount --rw`` / ``unmount`` without ``--rm``, ``images inspect
--platform``, ``images export`` of several platforms, ``events`` as JSON with filters,
``info`` in a namespace, ``completion``, and one-line errors (exit 1) from the commands
acting on one named object. Everything a test makes, it removes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
import tarfile
import time

import pytest

from pycontainerd.client import AsyncClient
from tests.support import pyctr as pyctr_support
from tests.support.pyctr import no_leftovers, pyctr  # noqa: F401  (autouse fixture)

pytestmark = [pytest.mark.integration, pytest.mark.root]

image = pyctr_support.image  # fixture: busybox pulled (and unpacked) into the daemon; yields its ref


def as_json(daemon, *args, **kw):
    return json.loads(pyctr(daemon, *args, **kw).stdout)


def one_line_error(proc, *words) -> None:
    """Exit 1 and a single ``pyctr: …`` line on stderr (no traceback) naming ``words``."""
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stderr.startswith("pyctr: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for w in words:
        assert w in proc.stderr, (w, proc.stderr)


def test_every_listing_as_json_and_quiet(daemon, image, busybox_image):
    oci = busybox_image.oci
    # images check
    assert pyctr(daemon, "images", "check", "-q").stdout.split() == [image]
    [checked] = as_json(daemon, "images", "check", "--format", "json")
    assert checked["name"] == image and checked["complete"] is True and checked["unpacked"] is True
    assert checked["present"] == checked["required"] == 3 and checked["missing"] == []
    assert checked["present_size"] == checked["required_size"] > 0

    # content ls
    blobs = {b["digest"]: b for b in as_json(daemon, "content", "ls", "--format", "json")}
    assert {oci.digest, oci.config_digest, *oci.layer_digests} <= set(blobs)
    assert blobs[oci.digest]["size"] == oci.size
    assert any(k.startswith("containerd.io/gc.ref.content") for k in blobs[oci.digest]["labels"])
    filtered = pyctr(daemon, "content", "ls", "-q", f"digest=={oci.config_digest}").stdout.split()
    assert filtered == [oci.config_digest]

    # content active: nothing in flight
    assert as_json(daemon, "content", "active", "--format", "json") == []

    # snapshots ls / usage
    snaps = as_json(daemon, "snapshots", "ls", "--format", "json")
    assert [s["kind"] for s in snaps] == ["committed"] and snaps[0]["parent"] == ""
    key = snaps[0]["name"]
    assert key.startswith("sha256:") and pyctr(daemon, "snapshots", "ls", "-q").stdout.split() == [key]
    [usage] = as_json(daemon, "snapshots", "usage", "--format", "json", key)
    assert usage["key"] == key and usage["size"] > 0 and usage["inodes"] > 0
    assert as_json(daemon, "snapshots", "usage", "--format", "json") == [usage]  # all, when no key
    table = pyctr(daemon, "snapshots", "usage").stdout.splitlines()
    assert table[0].split() == ["KEY", "SIZE", "INODES"] and table[1].split()[0] == key

    # leases ls
    pyctr(daemon, "leases", "create", "--id", "json-lease", "--expires", "1h", "why=listing")
    try:
        [lease] = [x for x in as_json(daemon, "leases", "ls", "--format", "json") if x["id"] == "json-lease"]
        assert lease["labels"]["why"] == "listing"
        assert "containerd.io/gc.expire" in lease["labels"]
        assert "json-lease" in pyctr(daemon, "leases", "ls", "-q").stdout.split()
        rows = pyctr(daemon, "leases", "ls").stdout.splitlines()
        assert rows[0].split() == ["ID", "CREATED", "AT", "LABELS"]
    finally:
        pyctr(daemon, "leases", "rm", "json-lease")
    assert "json-lease" not in pyctr(daemon, "leases", "ls", "-q").stdout.split()

    # namespaces ls
    pyctr(daemon, "ns", "create", "listed", "k=v")
    try:
        assert pyctr(daemon, "namespaces", "ls", "-q").stdout.split() == ["default", "listed"]
        nss = {n["name"]: n for n in as_json(daemon, "namespaces", "ls", "--format", "json")}
        assert set(nss) == {"default", "listed"} and nss["listed"]["labels"] == {"k": "v"}
    finally:
        pyctr(daemon, "ns", "rm", "listed")

    # plugins ls
    ids = pyctr(daemon, "plugins", "ls", "-q").stdout.split()
    assert "io.containerd.snapshotter.v1.overlayfs" in ids and "io.containerd.grpc.v1.content" in ids
    plugins = as_json(daemon, "plugins", "ls", "--format", "json", "type==io.containerd.snapshotter.v1")
    assert plugins and all(p["type"] == "io.containerd.snapshotter.v1" for p in plugins)
    overlay = next(p for p in plugins if p["id"] == "overlayfs")
    assert overlay["status"] == "ok" and overlay["error"] == ""

    # version
    version = as_json(daemon, "version", "--format", "json")
    assert version["client"]["version"] and version["server"]["version"] and version["server"]["uuid"]
    assert version["server"]["uuid"] == as_json(daemon, "info")["server"]["uuid"]


def test_tasks_ps_and_metrics_as_json(daemon, image):
    pyctr(daemon, "run", "-d", image, "jsontask", "sleep", "1000")
    try:
        pyctr(daemon, "tasks", "exec", "-d", "--exec-id", "side", "jsontask", "sleep", "1000")
        procs = as_json(daemon, "tasks", "ps", "--format", "json", "jsontask")
        assert len(procs) == 2 and all(p["pid"] > 0 for p in procs)
        assert sorted(p["exec_id"] for p in procs) == ["", "side"]
        [metrics] = as_json(daemon, "tasks", "metrics", "--format", "json", "jsontask")
        assert metrics["id"] == "jsontask" and metrics["data"], metrics
        missing = pyctr(daemon, "tasks", "metrics", "ghost", check=False)
        one_line_error(missing, "ghost")
    finally:
        pyctr(daemon, "tasks", "rm", "-f", "jsontask", check=False)
        pyctr(daemon, "containers", "rm", "jsontask", check=False)
    assert pyctr(daemon, "containers", "ls", "-q").stdout.split() == []


def test_content_active_shows_an_unfinished_write(daemon):
    payload = b"x" * 4096

    async def interrupted_write():
        async with AsyncClient(daemon.address) as client:
            async def data():
                yield payload
                await asyncio.sleep(0.2)  # let the daemon take the chunk before the stream breaks
                raise RuntimeError("interrupted on purpose")

            with contextlib.suppress(Exception):
                await client.content.write("pyctr-test-ingest", data(), total=3 * len(payload))

    async def abort():
        async with AsyncClient(daemon.address) as client:
            with contextlib.suppress(Exception):
                await client.content.abort("pyctr-test-ingest")

    asyncio.run(interrupted_write())
    try:
        rows = pyctr(daemon, "content", "active").stdout.splitlines()
        assert rows[0].split() == ["REF", "SIZE", "AGE"]
        row = next(r for r in rows[1:] if r.startswith("pyctr-test-ingest"))
        assert "4.0 KiB/12.0 KiB" in row, row
        [status] = as_json(daemon, "content", "active", "--format", "json")
        assert status["ref"] == "pyctr-test-ingest" and status["offset"] == 4096 and status["total"] == 12288
        assert as_json(daemon, "content", "active", "--format", "json", "ref==nothing-like-it") == []
    finally:
        asyncio.run(abort())
    assert as_json(daemon, "content", "active", "--format", "json") == []


def test_images_mount_rw_and_unmount_keeping_the_snapshot(daemon, image, tmp_path):
    target = tmp_path / "rw-root"
    missing = pyctr(daemon, "images", "mount", "--rw", image, target, check=False)  # as ctr: no mkdir
    one_line_error(missing, str(target), "no such directory")
    target.mkdir()
    try:
        out = pyctr(daemon, "images", "mount", "--rw", image, target).stdout
        assert out.strip() == str(target) and os.path.ismount(target)
        (target / "written-by-test").write_text("kept\n")
        info = as_json(daemon, "snapshots", "info", target)
        assert info["kind"] == "active" and info["name"] == str(target)
        # a second mount on the same target is refused, and leaves the first alone
        again = pyctr(daemon, "images", "mount", image, target, check=False)
        one_line_error(again, str(target), "already used", "unmount --rm")
        assert os.path.ismount(target)

        # unmount without --rm: the snapshot (with what was written) stays, held by its lease
        assert pyctr(daemon, "images", "unmount", target).stdout.strip() == str(target)
        kept = pyctr(daemon, "images", "mount", image, target, check=False)  # the kept snapshot is in the way
        one_line_error(kept, "already used")
        assert not os.path.ismount(target)
        assert not os.path.ismount(target) and not (target / "written-by-test").exists()
        assert str(target) in pyctr(daemon, "snapshots", "ls", "-q").stdout.split()
        leases = pyctr(daemon, "leases", "ls", "-q").stdout.split()
        assert any(x.startswith("pyctr-mount-") for x in leases), leases
        mount_cmd = pyctr(daemon, "snapshots", "mounts", "/mnt/again", target).stdout
        assert mount_cmd.startswith("mount -t overlay overlay /mnt/again -o ")
        options = mount_cmd.split(" -o ", 1)[1].strip().split(",")
        upper = next(o.split("=", 1)[1] for o in options if o.startswith("upperdir="))
        with open(os.path.join(upper, "written-by-test")) as f:
            assert f.read() == "kept\n"
        # unmounting what is not mounted is fine; --rm then drops the snapshot and its lease
        pyctr(daemon, "images", "unmount", "--rm", target)
        assert str(target) not in pyctr(daemon, "snapshots", "ls", "-q").stdout.split()
        assert not any(x.startswith("pyctr-mount-") for x in pyctr(daemon, "leases", "ls", "-q").stdout.split())
    finally:
        pyctr(daemon, "images", "unmount", "--rm", target, check=False)
    assert not os.path.ismount(target)

    missing = pyctr(daemon, "images", "mount", "not-pulled:1", tmp_path / "nowhere", check=False)
    one_line_error(missing, "not-pulled:1", "not found")
    assert not (tmp_path / "nowhere").exists()


def test_images_inspect_and_export_other_platforms(daemon, busybox_image, tmp_path):
    multi = busybox_image.multi.ref
    other = busybox_image.other_platform
    pyctr(daemon, "images", "pull", "--plain-http", "--all-platforms", multi)
    here = as_json(daemon, "images", "inspect", multi)
    assert sorted(here["platforms"]) == sorted([busybox_image.platform, "/".join(other.split("/")[:2])])
    assert here["target"]["digest"] == busybox_image.multi.digest and here["size"] > 0
    assert here["config"]["architecture"] == busybox_image.architecture
    there = as_json(daemon, "images", "inspect", "--platform", other, multi)
    assert there["config"]["architecture"] == other.split("/")[1]
    assert there["manifest"]["config"]["digest"] != here["manifest"]["config"]["digest"]

    archive = tmp_path / "multi.tar"
    pyctr(daemon, "images", "export", "--all-platforms", "--skip-manifest-json", archive, multi)
    with tarfile.open(archive) as tf:
        names = set(tf.getnames())
        index = json.load(tf.extractfile("index.json"))
    assert "manifest.json" not in names and "oci-layout" in names
    assert index["manifests"][0]["digest"] == busybox_image.multi.digest
    assert f"blobs/sha256/{busybox_image.other_manifest_digest.split(':')[1]}" in names
    # the default exports only this host's platform: the other platform's manifest is left out
    single = tmp_path / "single.tar"
    pyctr(daemon, "images", "export", single, multi)
    with tarfile.open(single) as tf:
        names = set(tf.getnames())
    assert "manifest.json" in names
    assert f"blobs/sha256/{busybox_image.other_manifest_digest.split(':')[1]}" not in names

    # exporting an image that is not there fails cleanly and leaves no file
    bad = tmp_path / "bad.tar"
    one_line_error(pyctr(daemon, "images", "export", bad, "not-here:1", check=False), "not-here:1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["multi.tar", "single.tar"]  # no tmp file either
    pyctr(daemon, "images", "rm", "--sync", multi)


def test_events_as_json_with_filters(daemon, image):
    cmd = [sys.executable, "-m", "pycontainerd_cmd.ctr", "-a", daemon.address, "events", "--format", "json",
           'topic=="/tasks/exit"', 'topic=="/containers/delete"']
    events = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.5)
        pyctr(daemon, "run", "--rm", image, "evjson", "sh", "-c", "exit 9", check=False)
        pyctr(daemon, "ns", "create", "ev-ns")
        pyctr(daemon, "ns", "rm", "ev-ns")
        time.sleep(0.5)
    finally:
        events.terminate()
        out, err = events.communicate(timeout=10)
    docs = [json.loads(line) for line in out.splitlines()]
    assert [d["topic"] for d in docs] == ["/tasks/exit", "/containers/delete"], (out, err)
    exit_ev, delete_ev = docs
    assert exit_ev["namespace"] == "default" and RFC3339.fullmatch(exit_ev["timestamp"])
    assert exit_ev["type"].endswith("TaskExit") and exit_ev["event"]["container_id"] == "evjson"
    assert exit_ev["event"]["exit_status"] == 9 and RFC3339.fullmatch(exit_ev["event"]["exited_at"])
    follows_json_convention(docs, "events")
    assert delete_ev["event"]["id"] == "evjson"


def test_info_in_a_namespace_and_completion(daemon):
    pyctr(daemon, "ns", "create", "info-ns")
    try:
        info = as_json(daemon, "-n", "info-ns", "info")
        assert info["namespace"] == "info-ns" and "info-ns" in info["namespaces"]
        assert info["plugins"]["ok"] > 0 and info["plugins"]["error"] == []
    finally:
        pyctr(daemon, "ns", "rm", "info-ns")
    bash = pyctr(daemon, "completion", "bash").stdout
    assert "_PYCTR_COMPLETE" in bash and "complete " in bash
    # what a shell asks of it, answered by the real command tree
    proc = subprocess.run([sys.executable, "-m", "pycontainerd_cmd.ctr"], capture_output=True, text=True,
                          env={**os.environ, "_PYCTR_COMPLETE": "bash_complete", "COMP_WORDS": "pyctr snapshots t",
                               "COMP_CWORD": "2"})
    assert proc.returncode == 0 and "plain,tree" in proc.stdout.splitlines(), proc.stdout


def test_commands_on_missing_objects_fail_with_one_line(daemon, image, busybox_image):
    one_line_error(pyctr(daemon, "content", "get", "sha256:" + "0" * 64, check=False), "not found")
    one_line_error(pyctr(daemon, "content", "rm", "sha256:" + "0" * 64, check=False), "not found")
    one_line_error(pyctr(daemon, "images", "inspect", "not-here:1", check=False), "not-here:1")
    one_line_error(pyctr(daemon, "containers", "label", "ghost", "a=b", check=False), "ghost")
    one_line_error(pyctr(daemon, "snapshots", "info", "ghost", check=False), "ghost")
    one_line_error(pyctr(daemon, "snapshots", "usage", "ghost", check=False), "ghost")
    one_line_error(pyctr(daemon, "snapshots", "mounts", "/mnt", "ghost", check=False), "ghost")
    one_line_error(pyctr(daemon, "leases", "rm", "ghost", check=False), "ghost")
    one_line_error(pyctr(daemon, "namespaces", "rm", "ghost", check=False), "ghost")
    bad = pyctr(daemon, "leases", "create", "--expires", "soon", check=False)
    assert bad.returncode == 2 and "invalid duration" in bad.stderr
    # a fetch of an image the registry does not have
    missing = f"{busybox_image.registry.host}/library/absent:1"
    one_line_error(pyctr(daemon, "content", "fetch", "--plain-http", missing, check=False), "not found")
    assert pyctr(daemon, "images", "ls", "-q").stdout.split() == [image]


SNAKE_KEY = re.compile(r"[a-z][a-z0-9_]*")
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z")
FREE_FORM = {"labels", "annotations", "exports", "spec", "manifest", "config"}
"""Keys whose value is user data or a document with its own format (docs/pyctr.md)."""
SIZE_KEYS = {"size", "offset", "total", "inodes", "present_size", "required_size"}


def follows_json_convention(value, where="$") -> None:
    """docs/pyctr.md "JSON output": snake_case keys, RFC 3339 times, integer sizes."""
    if isinstance(value, list):
        for i, v in enumerate(value):
            follows_json_convention(v, f"{where}[{i}]")
    elif isinstance(value, dict):
        for k, v in value.items():
            at = f"{where}.{k}"
            assert SNAKE_KEY.fullmatch(k), f"{at}: not a snake_case key"
            if k in FREE_FORM:
                continue
            if k.endswith("_at") or k == "timestamp":
                assert v is None or (isinstance(v, str) and RFC3339.fullmatch(v)), f"{at}: {v!r} is no RFC 3339 time"
            elif k in SIZE_KEYS:
                assert isinstance(v, int) and not isinstance(v, bool), f"{at}: {v!r} is no byte count"
            else:
                follows_json_convention(v, at)


def test_issue18_one_json_convention_over_every_listing(daemon, image):
    """Issue 18.7: every listing (and record) pyctr prints as JSON has one shape."""
    pyctr(daemon, "run", "-d", "--label", "team=a", image, "shape", "sleep", "1000")
    pyctr(daemon, "leases", "create", "--id", "shape-lease", "why=json")

    async def unfinished_write():
        async with AsyncClient(daemon.address) as client:
            async def data():
                yield b"x" * 4096
                await asyncio.sleep(0.2)
                raise RuntimeError("interrupted on purpose")

            with contextlib.suppress(Exception):
                await client.content.write("shape-ingest", data(), total=8192)

    asyncio.run(unfinished_write())
    try:
        snapshot = as_json(daemon, "snapshots", "ls", "--format", "json")[0]["name"]
        listings = {
            ("images", "ls"): "name", ("images", "check"): "name", ("content", "ls"): "digest",
            ("content", "active"): "ref", ("containers", "ls"): "id", ("tasks", "ls"): "container_id",
            ("tasks", "ps", "shape"): "pid", ("tasks", "metrics", "shape"): "timestamp",
            ("snapshots", "ls"): "kind", ("snapshots", "usage"): "size", ("leases", "ls"): "created_at",
            ("namespaces", "ls"): "name", ("plugins", "ls"): "status",
        }
        for args, key in listings.items():
            rows = as_json(daemon, *args, "--format", "json")
            assert isinstance(rows, list) and rows and all(key in r for r in rows), (args, rows)
            follows_json_convention(rows, " ".join(args))
        records = [("containers", "info", "shape"), ("snapshots", "info", snapshot), ("images", "inspect", image),
                   ("version", "--format", "json"), ("info",)]
        for args in records:
            follows_json_convention(as_json(daemon, *args), " ".join(args))

        [c] = as_json(daemon, "containers", "ls", "--format", "json")
        assert c["id"] == "shape" and c["labels"]["team"] == "a" and c["image"] == image
        assert c["created_at"] == as_json(daemon, "containers", "info", "shape")["created_at"]
        assert as_json(daemon, "snapshots", "info", snapshot)["kind"] == "committed"
        [active] = as_json(daemon, "content", "active", "--format", "json")
        assert (active["ref"], active["offset"], active["total"]) == ("shape-ingest", 4096, 8192)
        [metrics] = as_json(daemon, "tasks", "metrics", "--format", "json", "shape")
        values = list(_leaves(metrics["data"]["memory"]))  # cgroup v1 or v2: uint64 counters
        assert values and all(isinstance(v, int) for v in values), values  # numbers, not strings
    finally:
        pyctr(daemon, "tasks", "rm", "-f", "shape", check=False)
        pyctr(daemon, "containers", "rm", "shape", check=False)
        pyctr(daemon, "leases", "rm", "shape-lease", check=False)
        asyncio.run(_abort(daemon, "shape-ingest"))


def _leaves(doc):
    if isinstance(doc, dict):
        for v in doc.values():
            yield from _leaves(v)
    elif isinstance(doc, list):
        for v in doc:
            yield from _leaves(v)
    else:
        yield doc


async def _abort(daemon, ref):
    async with AsyncClient(daemon.address) as client:
        with contextlib.suppress(Exception):
            await client.content.abort(ref)
