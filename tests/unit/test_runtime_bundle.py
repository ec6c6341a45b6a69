"""Task bundles: layout, refusal of bad ids and duplicates, atomic delete, and the
two-step delete (detach into ``.trash``, remove later) the task manager uses."""

from __future__ import annotations

import json
import os
import stat

import pytest

from pycontainerd import errdefs
from pycontainerd.runtime.bundle import STATE_DIR, TRASH, Bundle, empty_trash, remapped_root_gid, remove_paths


def test_layout_without_root(tmp_path) -> None:
    b = Bundle.create(str(tmp_path), "default", "web", b'{"ociVersion": "1.0.2"}')
    assert b.path == str(tmp_path / STATE_DIR / "default" / "web")
    assert sorted(os.listdir(b.path)) == ["config.json", "rootfs", "work"]
    assert open(b.config, "rb").read() == b'{"ociVersion": "1.0.2"}'
    assert os.stat(b.path).st_mode & 0o777 == 0o700
    assert os.path.isdir(b.rootfs) and not os.path.islink(os.path.join(b.path, "work"))
    assert Bundle.list(str(tmp_path)) == [("default", "web")]
    assert Bundle.load(str(tmp_path), "default", "web") == b


def test_layout_with_root_symlinks_work(tmp_path) -> None:
    state, root = tmp_path / "state", tmp_path / "root"
    b = Bundle.create(str(state), "k8s.io", "c1", b"{}", root=str(root))
    work = os.readlink(os.path.join(b.path, "work"))
    assert work == str(root / STATE_DIR / "k8s.io" / "c1") and os.path.isdir(work)
    b.delete()
    assert not os.path.exists(b.path) and not os.path.exists(work)
    assert os.listdir(state / STATE_DIR / "k8s.io") == []


def test_duplicate_and_bad_ids(tmp_path) -> None:
    Bundle.create(str(tmp_path), "default", "x", b"{}")
    with pytest.raises(errdefs.AlreadyExists):
        Bundle.create(str(tmp_path), "default", "x", b"{}")
    for bad in ("", "../etc", "a/b", "-x", "x" * 77):
        with pytest.raises(errdefs.InvalidArgument):
            Bundle.create(str(tmp_path), "default", bad, b"{}")
    with pytest.raises(errdefs.InvalidArgument):
        Bundle.create(str(tmp_path), "bad/ns", "y", b"{}")
    with pytest.raises(errdefs.NotFound):
        Bundle.load(str(tmp_path), "default", "nope")


def test_address_file_and_list_skips_hidden(tmp_path) -> None:
    b = Bundle.create(str(tmp_path), "ns1", "a", b"{}")
    assert b.address is None
    b.write("address", "unix:///run/x/s/abc")
    assert b.address == "unix:///run/x/s/abc"
    os.mkdir(tmp_path / STATE_DIR / "ns1" / ".b")  # a delete interrupted half way
    Bundle.create(str(tmp_path), "ns2", "c", b"{}")
    assert Bundle.list(str(tmp_path)) == [("ns1", "a"), ("ns2", "c")]
    b.delete()
    b.delete()  # twice is fine
    assert Bundle.list(str(tmp_path)) == [("ns2", "c")]


def test_detach_frees_the_id_at_once_and_removes_later(tmp_path) -> None:
    state, root = tmp_path / "state", tmp_path / "root"
    b = Bundle.create(str(state), "k8s.io", "c1", b"{}", root=str(root))
    work = os.readlink(os.path.join(b.path, "work"))
    b.write("shim.log", "x" * 1000)
    moved = b.detach()
    # one rename each: the bundle and its work dir are gone from their places, whole in .trash
    assert not os.path.exists(b.path) and not os.path.exists(work)
    assert sorted(os.path.dirname(p) for p in moved) == [str(root / STATE_DIR / TRASH), str(state / STATE_DIR / TRASH)]
    assert any(os.path.isfile(os.path.join(p, "shim.log")) for p in moved)
    assert os.listdir(state / STATE_DIR / "k8s.io") == [] and Bundle.list(str(state)) == []
    again = Bundle.create(str(state), "k8s.io", "c1", b"{}", root=str(root))  # the id is free
    remove_paths(moved)
    assert not any(os.path.exists(p) for p in moved)
    assert os.path.isdir(again.path) and os.path.isdir(os.readlink(os.path.join(again.path, "work")))
    assert again.detach() and again.detach() == []  # detaching a detached bundle moves nothing


def test_empty_trash_removes_what_a_crash_left(tmp_path) -> None:
    state, root = tmp_path / "state", tmp_path / "root"
    Bundle.create(str(state), "default", "gone", b"{}", root=str(root)).detach()  # then "crash"
    keep = Bundle.create(str(state), "default", "live", b"{}", root=str(root))
    assert os.listdir(state / STATE_DIR / TRASH) and os.listdir(root / STATE_DIR / TRASH)
    empty_trash(str(state), str(root), None)
    assert not os.path.exists(state / STATE_DIR / TRASH) and not os.path.exists(root / STATE_DIR / TRASH)
    assert Bundle.list(str(state)) == [("default", "live")] and os.path.isdir(keep.path)


def _userns_spec(gid_maps) -> bytes:
    return json.dumps({"linux": {"uidMappings": [{"containerID": 0, "hostID": 300000, "size": 65536}],
                                 "gidMappings": gid_maps}}).encode()


@pytest.mark.root  # chown
def test_bundle_of_a_user_namespace_is_reachable_by_the_remapped_root(tmp_path) -> None:
    plain = Bundle.create(str(tmp_path), "ns", "plain", b'{"linux": {}}')
    assert stat.S_IMODE(os.stat(plain.path).st_mode) == 0o700
    spec = _userns_spec([{"containerID": 0, "hostID": 300000, "size": 65536}])
    b = Bundle.create(str(tmp_path), "ns", "mapped", spec)
    st = os.stat(b.path)
    assert stat.S_IMODE(st.st_mode) == 0o710 and st.st_gid == 300000 and st.st_uid == os.getuid()


def test_remapped_root_gid() -> None:
    assert remapped_root_gid(b"{}") is None and remapped_root_gid(b"not json") is None
    assert remapped_root_gid(_userns_spec([{"containerID": 0, "hostID": 5000, "size": 10}])) == 5000
    # gid 0 inside a range that starts lower is mapped too; no mapping for gid 0: nothing to do
    assert remapped_root_gid(_userns_spec([{"containerID": 1, "hostID": 7001, "size": 5}])) is None
    assert remapped_root_gid(json.dumps({"linux": {"gidMappings": [{"hostID": 1, "size": 1}]}}).encode()) is None
