"""``io.containerd.runtime.v2.task``: the task manager that runs a shim per task, and
reconnects to the shims of a previous daemon at start-up."""

from dataclasses import dataclass

from pycontainerd.log import get_logger
from pycontainerd.plugin import PluginType, Registration
from pycontainerd.remotes.platforms import default_spec
from pycontainerd.runtime.task import TaskManager

log = get_logger("runtime")


@dataclass
class Config:
    shim_debug: bool = False
    """Shims log at debug level (to ``<bundle>/shim.log``)."""


async def init(ic):
    daemon = ic.daemon
    address = daemon.grpc.address
    manager = TaskManager(str(ic.state.parent), address=address, root=str(ic.root.parent),
                          events=ic.get_single(PluginType.EVENT), ttrpc_address=f"{address}.ttrpc",
                          debug=ic.config.shim_debug)
    result = await manager.load_existing()
    for task in result.loaded:
        log.info("reconnected to shim", namespace=task.namespace, id=task.id)
    for gone in result.cleaned:
        log.warning("cleaned up task of a dead shim", namespace=gone.namespace, id=gone.id, reason=gone.reason)
    p = default_spec()
    ic.plugin.platforms.append({"os": p.os, "architecture": p.architecture, "variant": p.variant})
    return manager


registration = Registration(
    type=PluginType.RUNTIME_V2, id="task", requires=(PluginType.EVENT,), config=Config, init=init,
    close=TaskManager.close,
)
