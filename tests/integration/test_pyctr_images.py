"""The real ``pyctr`` binary against a real daemon and a real registry: images pull (with
progress), ls/check/inspect/tag/rm/prune, export → import round trips (our OCI tar, and a
docker archive made by skopeo), push read back by skopeo, mount/unmount, and content."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile

import pytest

from tests.support.pyctr import no_leftovers, pyctr, wait_for  # noqa: F401  (autouse fixture)

pytestmark = [pytest.mark.integration, pytest.mark.root]


def image_names(daemon) -> list[str]:
    return pyctr(daemon, "images", "ls", "-q").stdout.split()


def test_pull_shows_progress_and_lists_the_image(daemon, busybox_image):
    ref = busybox_image.oci.ref
    out = pyctr(daemon, "images", "pull", "--plain-http", ref).stdout
    lines = out.splitlines()
    for layer in busybox_image.oci.layer_digests:
        assert f"layer-{layer}: done" in out, out
    assert any(line.startswith("elapsed:") and "total:" in line for line in lines), out
    assert any(line.startswith("unpacking ") for line in lines), out
    assert lines[-1].split()[:2] == [ref, busybox_image.oci.digest]
    rows = pyctr(daemon, "images", "ls").stdout.splitlines()
    assert rows[0].split() == ["REF", "TYPE", "DIGEST", "SIZE", "PLATFORMS", "LABELS"]
    row = next(r for r in rows[1:] if r.startswith(ref))
    assert busybox_image.oci.digest in row and busybox_image.platform in row
    listing = json.loads(pyctr(daemon, "images", "ls", "--format", "json").stdout)
    assert listing[0]["name"] == ref and listing[0]["target"]["digest"] == busybox_image.oci.digest
    assert listing[0]["size"] > 0

    check = pyctr(daemon, "images", "check").stdout.splitlines()
    assert "complete (3/3)" in check[1] and check[1].split()[-1] == "true"
    inspect = json.loads(pyctr(daemon, "images", "inspect", ref).stdout)
    assert inspect["config"]["rootfs"]["diff_ids"] and inspect["manifest"]["layers"]
    assert inspect["platforms"] == [busybox_image.platform]

    # a multi-platform index, every platform's content
    multi = busybox_image.multi.ref
    pyctr(daemon, "images", "pull", "--plain-http", "--all-platforms", multi)
    row = next(r for r in pyctr(daemon, "images", "ls").stdout.splitlines() if r.startswith(multi))
    assert "linux/arm64" in row and busybox_image.platform in row

    pyctr(daemon, "images", "tag", ref, "example.com/copy:1")
    assert "example.com/copy:1" in image_names(daemon)
    removed = pyctr(daemon, "images", "rm", "example.com/copy:1", multi).stdout.split()
    assert removed == ["example.com/copy:1", multi]
    assert image_names(daemon) == [ref]


def test_pull_from_a_plain_http_registry_without_the_flag_says_what_to_do(daemon, busybox_image):
    """Issue 18.3: not ``[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:992)``."""
    out = pyctr(daemon, "images", "pull", busybox_image.oci.ref, check=False)
    host = busybox_image.registry.host
    assert out.returncode == 1 and out.stderr.count("\n") == 1, out.stderr
    assert out.stderr.startswith("pyctr: ") and "SSL" not in out.stderr
    assert f"the registry {host} answered plain HTTP to an HTTPS request" in out.stderr
    assert "use --plain-http" in out.stderr and "hosts.toml" in out.stderr
    assert pyctr(daemon, "images", "ls", "-q").stdout.split() == []


def test_export_import_round_trip(daemon, busybox_image, tmp_path):
    ref = busybox_image.oci.ref
    pyctr(daemon, "images", "pull", "--plain-http", ref)
    archive = tmp_path / "busybox.tar"
    pyctr(daemon, "images", "export", archive, ref)
    with tarfile.open(archive) as tf:
        names = set(tf.getnames())
        index = json.load(tf.extractfile("index.json"))
        manifest = json.load(tf.extractfile("manifest.json"))
    assert {"oci-layout", "index.json", "manifest.json"} <= names
    assert f"blobs/sha256/{busybox_image.oci.digest.split(':')[1]}" in names
    assert index["manifests"][0]["annotations"]["io.containerd.image.name"] == ref
    assert manifest[0]["RepoTags"] and len(manifest[0]["Layers"]) == 1
    # skopeo (not our code) reads what we wrote
    subprocess.run(["skopeo", "inspect", f"oci-archive:{archive}:latest"], check=True, capture_output=True)

    pyctr(daemon, "images", "rm", "--sync", ref)
    assert image_names(daemon) == []
    out = pyctr(daemon, "images", "import", archive).stdout
    assert f"unpacking {ref} ({busybox_image.oci.digest})...done" in out
    assert image_names(daemon) == [ref]
    assert "complete (3/3)" in pyctr(daemon, "images", "check").stdout
    assert pyctr(daemon, "run", "--rm", ref, "from-import", "echo", "imported").stdout == "imported\n"


def test_import_of_what_is_not_a_whole_image_archive(daemon, busybox_image, tmp_path):
    """Issue 18.5: random bytes, an export cut inside a layer (read from a file and from
    stdin): one line that says what is wrong and names the blob; nothing left behind."""
    junk = tmp_path / "junk.tar"
    junk.write_bytes(os.urandom(1 << 20))
    out = pyctr(daemon, "images", "import", junk, check=False)
    assert out.returncode == 1 and out.stderr == (
        "pyctr: not an image archive: not a tar file (plain, gzip, bzip2 or xz): invalid argument\n")

    archive = tmp_path / "busybox.tar"
    subprocess.run(["skopeo", "copy", "--quiet", f"oci:{busybox_image.layout}:latest",
                    f"oci-archive:{archive}:example.com/busybox:1"], check=True, capture_output=True)
    layer = busybox_image.oci.layer_digests[0].split(":")[1]
    with tarfile.open(archive) as tf:
        member = tf.getmember(f"blobs/sha256/{layer}")
    cut = tmp_path / "cut.tar"
    cut.write_bytes(archive.read_bytes()[:member.offset_data + member.size // 2])
    for source in (cut, "-"):  # a file (read for its index first), then a stream
        with open(cut if source == "-" else os.devnull, "rb") as stdin:
            out = pyctr(daemon, "images", "import", source, check=False, stdin=stdin)
        assert out.returncode == 1 and out.stderr.count("\n") == 1, out.stderr
        assert out.stderr.startswith(f"pyctr: blobs/sha256/{layer}: the archive ends or is damaged inside this "
                                     "member"), out.stderr
    assert image_names(daemon) == []
    assert json.loads(pyctr(daemon, "content", "active", "--format", "json").stdout) == []


def test_import_a_docker_archive_made_by_skopeo(daemon, busybox_image, tmp_path):
    archive = tmp_path / "docker.tar"
    subprocess.run(["skopeo", "copy", "--src-tls-verify=false", f"docker://{busybox_image.oci.ref}",
                    f"docker-archive:{archive}:example.org/made/by-skopeo:v1"], check=True, capture_output=True)
    out = pyctr(daemon, "images", "import", archive).stdout
    assert "unpacking example.org/made/by-skopeo:v1" in out and out.rstrip().endswith("done")
    row = pyctr(daemon, "images", "ls").stdout.splitlines()[1]
    assert row.startswith("example.org/made/by-skopeo:v1")
    assert "application/vnd.docker.distribution.manifest.v2+json" in row
    assert pyctr(daemon, "run", "--rm", "example.org/made/by-skopeo:v1", "dock", "echo", "ok").stdout == "ok\n"
    # an OCI archive whose index names images by tag only needs --base-name
    oci = tmp_path / "oci.tar"
    subprocess.run(["skopeo", "copy", "--src-tls-verify=false", f"docker://{busybox_image.oci.ref}",
                    f"oci-archive:{oci}:v2"], check=True, capture_output=True)
    nameless = pyctr(daemon, "images", "import", "--no-unpack", oci, check=False)
    assert nameless.returncode == 1 and "--base-name" in nameless.stderr
    pyctr(daemon, "images", "import", "--base-name", "example.org/based", oci)
    assert "example.org/based:v2" in image_names(daemon)


def test_push_to_the_registry_under_a_new_name(daemon, busybox_image):
    ref = busybox_image.oci.ref
    host = busybox_image.registry.host
    pyctr(daemon, "images", "pull", "--plain-http", ref)
    target = f"{host}/pushed/by-pyctr:v1"
    out = pyctr(daemon, "images", "push", "--plain-http", target, ref).stdout
    assert f"pushed {target} {busybox_image.oci.digest}" in out
    inspected = subprocess.run(["skopeo", "inspect", "--tls-verify=false", f"docker://{target}"],
                               check=True, capture_output=True, text=True)
    doc = json.loads(inspected.stdout)
    assert doc["Digest"] == busybox_image.oci.digest and doc["Layers"] == list(busybox_image.oci.layer_digests)
    missing = pyctr(daemon, "images", "push", "--plain-http", f"{host}/x/y:z", "not-here:1", check=False)
    assert missing.returncode == 1 and "not found" in missing.stderr


def test_mount_unmount_prune_and_content(daemon, busybox_image, tmp_path):
    ref = busybox_image.oci.ref
    pyctr(daemon, "images", "pull", "--plain-http", ref)
    target = tmp_path / "rootfs"
    target.mkdir()
    pyctr(daemon, "images", "mount", ref, target)
    try:
        assert (target / "bin" / "busybox").exists()
    finally:
        pyctr(daemon, "images", "unmount", "--rm", target)
    assert not os.path.ismount(target)
    assert str(target) not in pyctr(daemon, "snapshots", "ls").stdout

    digests = pyctr(daemon, "content", "ls", "-q").stdout.split()
    assert busybox_image.oci.digest in digests and busybox_image.oci.config_digest in digests
    raw = subprocess.run(pyctr_cmd(daemon, "content", "get", busybox_image.oci.digest), capture_output=True,
                         check=True).stdout
    assert json.loads(raw)["config"]["digest"] == busybox_image.oci.config_digest
    assert pyctr(daemon, "content", "active").stdout.splitlines()[0].split() == ["REF", "SIZE", "AGE"]

    pyctr(daemon, "containers", "create", ref, "holder", "true")
    pyctr(daemon, "images", "tag", ref, "example.com/unused:1")
    assert pyctr(daemon, "images", "prune", check=False).returncode == 2  # needs --all
    assert pyctr(daemon, "images", "prune", "--all").stdout.split() == ["example.com/unused:1"]
    assert image_names(daemon) == [ref]  # the container's image stays
    pyctr(daemon, "containers", "rm", "holder")


def pyctr_cmd(daemon, *args):
    import sys

    return [sys.executable, "-m", "pycontainerd_cmd.ctr", "-a", daemon.address, *map(str, args)]


def test_namespaces_leases_snapshots_plugins_version_info(daemon, busybox_image):
    pyctr(daemon, "ns", "create", "team-a", "owner=alice")
    rows = pyctr(daemon, "namespaces", "ls").stdout.splitlines()
    assert any(r.split() == ["team-a", "owner=alice"] for r in rows)
    pyctr(daemon, "-n", "team-a", "images", "pull", "--plain-http", busybox_image.oci.ref)
    assert image_names(daemon) == []  # namespaced
    assert pyctr(daemon, "images", "ls", "-q", ns="team-a").stdout.split() == [busybox_image.oci.ref]
    busy = pyctr(daemon, "ns", "rm", "team-a", check=False)
    assert busy.returncode == 1 and "pyctr: " in busy.stderr
    env_ns = pyctr(daemon, "images", "ls", "-q", env={"PYCONTAINERD_NAMESPACE": "team-a"}).stdout.split()
    assert env_ns == [busybox_image.oci.ref]

    snaps = pyctr(daemon, "-n", "team-a", "snapshots", "ls").stdout.splitlines()
    assert snaps[0].split() == ["KEY", "PARENT", "KIND"] and snaps[1].split()[-1] == "Committed"
    top = snaps[1].split()[0]
    pyctr(daemon, "-n", "team-a", "snapshots", "prepare", "work", top)
    mount_line = pyctr(daemon, "-n", "team-a", "snapshots", "mounts", "/mnt/x", "work").stdout
    assert mount_line.startswith("mount -t ") and "/mnt/x" in mount_line
    assert json.loads(pyctr(daemon, "-n", "team-a", "snapshots", "info", "work").stdout)["kind"] == "active"
    assert "\\_ work" in pyctr(daemon, "-n", "team-a", "snapshots", "tree").stdout
    assert "work" in pyctr(daemon, "-n", "team-a", "snapshots", "usage", "work").stdout
    pyctr(daemon, "-n", "team-a", "snapshots", "rm", "work")

    lease = pyctr(daemon, "leases", "create", "--id", "held", "purpose=test").stdout.strip()
    assert lease == "held"
    assert "purpose=test" in pyctr(daemon, "leases", "ls").stdout
    pyctr(daemon, "leases", "rm", "held")
    assert pyctr(daemon, "leases", "ls", "-q").stdout.split() == []

    plugins = pyctr(daemon, "plugins", "ls").stdout.splitlines()
    assert plugins[0].split() == ["TYPE", "ID", "PLATFORMS", "STATUS"]
    assert any(r.split()[:2] == ["io.containerd.snapshotter.v1", "overlayfs"] for r in plugins)
    version = pyctr(daemon, "version").stdout
    assert "Client:" in version and "Server:" in version and "UUID:" in version
    info = json.loads(pyctr(daemon, "info").stdout)
    assert "overlayfs" in info["snapshotters"] and info["address"] == daemon.address

    pyctr(daemon, "-n", "team-a", "images", "rm", "--sync", busybox_image.oci.ref)
    assert wait_for(lambda: pyctr(daemon, "ns", "rm", "team-a", check=False).returncode == 0)


def test_remaining_verbs(daemon, busybox_image, tmp_path):
    ref = busybox_image.oci.ref
    out = pyctr(daemon, "content", "fetch", "--plain-http", ref).stdout
    assert f"{ref} {busybox_image.oci.digest}" in out
    assert pyctr(daemon, "images", "check").stdout.splitlines()[1].split()[-1] == "false"  # fetched, not unpacked
    config = busybox_image.oci.config_digest
    assert "note=hi" in pyctr(daemon, "content", "label", config, "note=hi").stdout
    assert "note=" not in pyctr(daemon, "content", "label", config, "note=").stdout
    dry = pyctr(daemon, "content", "prune", "references", "--dry").stdout
    assert busybox_image.oci.digest in dry and "would remove 1" in dry

    pyctr(daemon, "images", "pull", "--plain-http", ref)
    top = pyctr(daemon, "snapshots", "ls", "-q").stdout.split()[0]
    pyctr(daemon, "snapshots", "prepare", "--mounts", "--target", "/x", "active-1", top)
    pyctr(daemon, "snapshots", "commit", "committed-1", "active-1")
    view = pyctr(daemon, "snapshots", "view", "--mounts", "view-1", "committed-1").stdout
    assert view.startswith("mount -t ")
    assert "k=v" in pyctr(daemon, "snapshots", "label", "committed-1", "k=v").stdout
    rows = {r.split()[0]: r.split()[-1] for r in pyctr(daemon, "snapshots", "ls").stdout.splitlines()[1:]}
    assert rows["committed-1"] == "Committed" and rows["view-1"] == "View"
    pyctr(daemon, "snapshots", "rm", "view-1")
    # nothing holds committed-1 now (no lease, no label): garbage collection takes it
    assert wait_for(lambda: "committed-1" not in pyctr(daemon, "snapshots", "ls", "-q").stdout.split())
    gone = pyctr(daemon, "snapshots", "rm", "never-was", check=False)
    assert gone.returncode == 1 and gone.stderr.startswith("pyctr: ")

    pyctr(daemon, "ns", "create", "labelled")
    assert "a=1" in pyctr(daemon, "ns", "label", "labelled", "a=1").stdout
    pyctr(daemon, "ns", "rm", "labelled")
    detailed = pyctr(daemon, "plugins", "ls", "-d", "type==io.containerd.snapshotter.v1").stdout
    assert "Type:          io.containerd.snapshotter.v1" in detailed

    # attach to a detached task started with fifos
    pyctr(daemon, "run", "-d", "--fifo-dir", "/run/pycontainerd/fifo", ref, "att", "sh", "-c",
          "sleep 3; echo late output; exit 6")  # time for pyctr to start and attach
    attached = pyctr(daemon, "tasks", "attach", "att", check=False)
    assert attached.returncode == 6 and "late output" in attached.stdout
    pyctr(daemon, "tasks", "rm", "att")
    pyctr(daemon, "containers", "rm", "att")

    # import from stdin, export to stdout
    exported = subprocess.run(pyctr_cmd(daemon, "images", "export", "-", ref), capture_output=True, check=True).stdout
    pyctr(daemon, "images", "rm", ref)
    imported = subprocess.run(pyctr_cmd(daemon, "images", "import", "-"), input=exported, capture_output=True)
    assert imported.returncode == 0 and b"done" in imported.stdout
    assert image_names(daemon) == [ref]
    pyctr(daemon, "content", "prune", "references")
    assert "gc.ref.content.l." not in pyctr(daemon, "content", "ls").stdout
    assert pyctr(daemon, "content", "rm", busybox_image.oci.layer_digests[0]).stdout.strip() == \
        busybox_image.oci.layer_digests[0]
