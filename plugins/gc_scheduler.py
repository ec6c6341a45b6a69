"""``io.containerd.gc.v1.scheduler``: schedules garbage collection of metadata and backends.
Backends (content store, snapshotters) register their sweepers on the scheduler at init."""

from dataclasses import dataclass

from pycontainerd.gc_scheduler import Scheduler
from pycontainerd.plugin import PluginType, Registration


@dataclass
class Config:
    schedule_delay: float = 0.0
    """Seconds between a delete asking for collection and the collection."""
    startup_delay: float = 0.1
    """Seconds after start-up before the first collection."""


async def init(ic):
    scheduler = Scheduler(
        ic.get_single(PluginType.METADATA),
        schedule_delay=ic.config.schedule_delay,
        startup_delay=ic.config.startup_delay,
    )
    scheduler.start()
    return scheduler


registration = Registration(
    type=PluginType.GC, id="scheduler", requires=(PluginType.METADATA,), config=Config, init=init,
    close=Scheduler.close,
)
