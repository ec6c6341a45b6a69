"""``io.containerd.content.v1.content``: the local blob store under
``<root>/io.containerd.content.v1.content`` (``blobs/sha256``, ``ingest``)."""

from pycontainerd.content.local import LocalStore
from pycontainerd.plugin import PluginType, Registration


def init(ic):
    store = LocalStore(ic.root)
    ic.plugin.exports["root"] = str(ic.root)
    return store


registration = Registration(type=PluginType.CONTENT, id="content", init=init)
