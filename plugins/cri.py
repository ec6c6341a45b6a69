"""``io.containerd.grpc.v1.cri``: Kubernetes' CRI (``runtime.v1`` RuntimeService and
ImageService) on the daemon's socket; configuration in ``[plugins."io.containerd.grpc.v1.cri"]``
(:class:`pycontainerd.cri.config.CRIConfig`)."""

from pycontainerd import namespaces
from pycontainerd.cri.backend import NAMESPACE
from pycontainerd.cri.config import CRIConfig
from pycontainerd.cri.service import CRIService
from pycontainerd.cri.servicer import CRIServer
from pycontainerd.cri.store import KIND_LABEL
from pycontainerd.errdefs import ContainerdError
from pycontainerd.plugin import PluginType, Registration


def _has_cri_objects(ic) -> bool:
    """Whether a previous run left CRI sandboxes or containers (read in-process, so start-up
    makes no call to the daemon's own socket when there is nothing to recover)."""
    try:
        store = ic.get(PluginType.SERVICE, "containers-service")
        with namespaces.using(NAMESPACE):
            return bool(store.list([f'labels."{KIND_LABEL}"']))
    except ContainerdError:
        return False


def init(ic):
    cfg: CRIConfig = ic.config
    snapshotter = ic.plugins.by_uri.get(f"{PluginType.SNAPSHOTTER}.{cfg.containerd.snapshotter}")
    root = snapshotter.exports.get("root", "") if snapshotter is not None and snapshotter.ok else ""
    service = CRIService(cfg, address=ic.daemon.grpc.address, root=str(ic.root), state=str(ic.state),
                         snapshotter_root=root)
    ic.plugin.exports["CRIVersion"] = "v1"
    return CRIServer(service, eager_start=_has_cri_objects(ic))


registration = Registration(
    type=PluginType.GRPC, id="cri", requires=(PluginType.SERVICE, PluginType.SNAPSHOTTER), config=CRIConfig,
    init=init, close=CRIServer.close,
)
