"""Pod user namespace options (:mod:`pycontainerd.cri.userns`): containerd's rules, its
messages and UNKNOWN code; the spec options and snapshot labels a POD-mode pod gets."""

from __future__ import annotations

import pytest

from pycontainerd.api.cri.runtime.v1 import api_pb2 as cri
from pycontainerd.cri import userns
from pycontainerd.errdefs import Unknown
from pycontainerd.oci import opts as o

ROOT = cri.IDMapping(container_id=0, host_id=200000, length=65536)


def options(mode=cri.POD, uids=(ROOT,), gids=(ROOT,), network=cri.POD) -> cri.NamespaceOption:
    return cri.NamespaceOption(network=network, userns_options=cri.UserNamespace(mode=mode, uids=uids, gids=gids))


def test_pod_mode_maps_and_labels():
    maps = userns.parse(options())
    assert maps == ([{"containerID": 0, "hostID": 200000, "size": 65536}],) * 2
    assert userns.snapshot_labels(maps) == {"containerd.io/snapshot/uidmapping": "0:200000:65536",
                                            "containerd.io/snapshot/gidmapping": "0:200000:65536"}


def test_host_user_namespace():
    assert userns.parse(cri.NamespaceOption()) is None
    assert userns.parse(options(mode=cri.NODE, uids=(), gids=())) is None
    assert userns.snapshot_labels(None) == {} and userns.sandbox_opts(None) == []


@pytest.mark.parametrize(("opts", "message"), [
    (options(uids=(ROOT, ROOT)), "UID mapping: only one mapping line supported, got 2 mapping lines"),
    (options(gids=(cri.IDMapping(container_id=1, host_id=5, length=9),)), "GID mapping: container ID 0 is not mapped"),
    (options(uids=(cri.IDMapping(container_id=0, host_id=5, length=0),)), "invalid mapping length: 0"),
    (options(uids=(cri.IDMapping(container_id=0, host_id=4294967000, length=65536),)),
     "UID mapping: mapping 0:4294967000:65536 goes past the largest id (4294967295)"),
    (options(gids=()), "can't use user namespace mode 'POD' without UID and GID mappings"),
    (options(mode=cri.NODE), "can't use user namespace mode 'NODE' with mappings. Got 1 UID mappings and 1 GID"),
    (options(mode=cri.CONTAINER, uids=(), gids=()), "unsupported user namespace mode: 'CONTAINER'"),
    (options(mode=cri.TARGET, uids=(), gids=()), "unsupported user namespace mode: 'TARGET'"),
])
def test_refused_as_containerd(opts, message):
    with pytest.raises(Unknown, match="^user namespace configuration: ") as err:
        userns.parse(opts)
    assert message in str(err.value)


def test_host_network_with_pod_user_namespace_refused():
    opts = options(network=cri.NODE)
    with pytest.raises(Unknown, match="host network"):
        userns.check_host_network(opts, userns.parse(opts))


def test_container_options_must_be_the_pods():
    userns.check_same(options(), options())
    userns.check_same(cri.NamespaceOption(), options(mode=cri.NODE, uids=(), gids=()))
    other = cri.IDMapping(container_id=0, host_id=300000, length=65536)
    for container in (cri.NamespaceOption(), options(uids=(other,), gids=(other,))):
        with pytest.raises(Unknown, match="user namespace config for sandbox is different from container"):
            userns.check_same(options(), container)


def test_spec_options():
    maps = userns.parse(options())
    spec = o.generate("k8s.io", "sb", *userns.sandbox_opts(maps))
    nss = {n["type"]: n.get("path", "") for n in spec["linux"]["namespaces"]}
    assert nss["user"] == "" and nss["network"] == ""
    assert spec["linux"]["uidMappings"] == spec["linux"]["gidMappings"] == maps[0]
    spec = o.generate("k8s.io", "c", *userns.container_opts(maps, 4242))
    assert {n["type"]: n.get("path", "") for n in spec["linux"]["namespaces"]}["user"] == "/proc/4242/ns/user"
    assert spec["linux"]["uidMappings"] == maps[0]
