"""``io.containerd.grpc.v1.cri``: Kubernetes' CRI (``runtime.v1`` RuntimeService and
ImageService) on the daemon's socket; configuration in ``[plugins."io.containerd.grpc.v1.cri"]``
(:class:`pycontainerd.cri.config.CRIConfig`).

The plugin holds the daemon's in-process services (containers, images, content, leases,
snapshots, diff, tasks, the event exchange) through :mod:`pycontainerd.cri.daemon`, as
containerd's CRI plugin does: it makes no connection to the daemon's own socket. At init it
subscribes to task exits and starts recovering the sandboxes and containers of a previous
run, once, in the background (CRI calls wait for it).
"""

from pycontainerd.cri.config import CRIConfig
from pycontainerd.cri.daemon import Services
from pycontainerd.cri.service import CRIService
from pycontainerd.cri.servicer import CRIServer
from pycontainerd.plugin import PluginType, Registration


async def init(ic):
    cfg: CRIConfig = ic.config
    snapshotter = ic.plugins.by_uri.get(f"{PluginType.SNAPSHOTTER}.{cfg.containerd.snapshotter}")
    root = snapshotter.exports.get("root", "") if snapshotter is not None and snapshotter.ok else ""
    services = Services(
        containers=ic.get(PluginType.SERVICE, "containers-service"),
        images=ic.get(PluginType.SERVICE, "images-service"),
        content=ic.get(PluginType.SERVICE, "content-service"),
        leases=ic.get(PluginType.SERVICE, "leases-service"),
        snapshots=ic.get(PluginType.SERVICE, "snapshots-service"),
        differ=ic.get(PluginType.SERVICE, "diff-service"),
        tasks=ic.get(PluginType.SERVICE, "tasks-service"),
        exchange=ic.get_single(PluginType.EVENT),
        gc=ic.get_all(PluginType.GC).get("scheduler"),
    )
    service = CRIService(cfg, services, root=str(ic.root), state=str(ic.state), snapshotter_root=root)
    service.start()
    ic.plugin.exports["CRIVersion"] = "v1"
    return CRIServer(service)


registration = Registration(
    type=PluginType.GRPC, id="cri",
    requires=(PluginType.SERVICE, PluginType.SNAPSHOTTER, PluginType.EVENT, PluginType.GC), config=CRIConfig,
    init=init, close=CRIServer.close,
)
