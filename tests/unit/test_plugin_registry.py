from dataclasses import dataclass

import pytest

from pycontainerd.errdefs import FailedPrecondition, InvalidArgument, PluginSkipped
from pycontainerd.plugin import ALL, Registration, Registry, build_config, close_all, initialize


def reg(type_, id_, requires=(), init=None, **kw):
    return Registration(type=type_, id=id_, requires=tuple(requires), init=init or (lambda ic: id_), **kw)


def test_graph_orders_by_requires_and_puts_all_last():
    r = Registry()
    r.register(reg("t.grpc", "svc", requires=["t.service"]))
    r.register(reg("t.intro", "introspection", requires=[ALL]))
    r.register(reg("t.service", "s", requires=["t.meta"]))
    r.register(reg("t.meta", "m"))
    order = [x.uri for x in r.graph()]
    assert order == ["t.meta.m", "t.service.s", "t.grpc.svc", "t.intro.introspection"]


def test_graph_refuses_cycles():
    r = Registry()
    r.register(reg("a", "1", requires=["b"]))
    r.register(reg("b", "1", requires=["a"]))
    with pytest.raises(FailedPrecondition, match="cycle"):
        r.graph()


def test_disabled_by_uri_or_id():
    r = Registry()
    r.register(reg("a", "one"))
    r.register(reg("a", "two"))
    r.register(reg("a", "three"))
    assert [x.id for x in r.graph(disabled=["a.one", "two"])] == ["three"]


def test_duplicate_registration_refused():
    r = Registry()
    r.register(reg("a", "1"))
    with pytest.raises(InvalidArgument, match="twice"):
        r.register(reg("a", "1"))


async def test_init_errors_are_recorded_and_dependents_fail(tmp_path):
    def boom(ic):
        raise RuntimeError("disk on fire")

    def dependent(ic):
        return ic.get("base", "broken")

    async def skip(ic):
        raise PluginSkipped("not on this host")

    closed = []
    r = Registry()
    r.register(reg("base", "broken", init=boom))
    r.register(reg("base", "fine", close=closed.append))
    r.register(reg("top", "user", requires=["base"], init=dependent))
    r.register(reg("opt", "skipper", init=skip))
    plugins = await initialize(r.graph(), None, {}, tmp_path / "root", tmp_path / "state")
    by = plugins.by_uri
    assert str(by["base.broken"].error) == "disk on fire"
    assert by["base.fine"].ok and by["base.fine"].instance == "fine"
    assert isinstance(by["top.user"].error, FailedPrecondition)
    assert "base.broken" in str(by["top.user"].error)
    assert by["opt.skipper"].skipped and "skip plugin" in str(by["opt.skipper"].error)
    assert plugins.single("base") == "fine"  # the first *working* one
    await close_all(plugins)
    assert closed == ["fine"]


@dataclass
class Cfg:
    size: int = 3
    name: str = "x"


def test_plugin_config_from_table():
    r = reg("a", "b", config=Cfg)
    assert build_config(r, None) == Cfg()
    assert build_config(r, {"size": 5}) == Cfg(size=5)
    with pytest.raises(InvalidArgument, match="unknown option"):
        build_config(r, {"sise": 5})


async def test_init_context_paths_and_config(tmp_path):
    seen = {}

    def init(ic):
        seen.update(root=ic.root, state=ic.state, config=ic.config)
        ic.plugin.exports["root"] = str(ic.root)
        return object()

    r = Registry()
    r.register(reg("io.x.v1", "thing", init=init, config=Cfg))
    plugins = await initialize(r.graph(), None, {"io.x.v1.thing": {"size": 9}}, tmp_path / "r", tmp_path / "s")
    assert seen == {"root": tmp_path / "r" / "io.x.v1.thing", "state": tmp_path / "s" / "io.x.v1.thing", "config": Cfg(size=9)}
    assert plugins.by_uri["io.x.v1.thing"].exports == {"root": str(tmp_path / "r" / "io.x.v1.thing")}


def test_unknown_plugin_names_with_the_likely_one():
    """Issue 18.9: names in disabled_plugins/required_plugins that match no plugin, with the
    registered one a misspelling most likely meant (compared within the plugin's type)."""
    from pycontainerd.plugin import Registration, Registry

    reg = Registry()
    for type_, id_ in [("io.containerd.snapshotter.v1", "overlayfs"), ("io.containerd.snapshotter.v1", "native"),
                       ("io.containerd.grpc.v1", "content"), ("io.containerd.grpc.v1", "cri")]:
        reg.register(Registration(type=type_, id=id_, init=lambda ic: None))
    assert reg.unknown(["io.containerd.snapshotter.v1.overlayfs", "native", "cri"]) == []
    assert reg.unknown(["io.containerd.snapshotter.v1.overlayfss", "io.containerd.grpc.v1.nonexistent",
                        "nativ", "zfs"]) == [
        ("io.containerd.snapshotter.v1.overlayfss", "io.containerd.snapshotter.v1.overlayfs"),
        ("io.containerd.grpc.v1.nonexistent", None), ("nativ", "native"), ("zfs", None)]
