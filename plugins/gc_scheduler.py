"""``io.containerd.gc.v1.scheduler``: schedules garbage collection of metadata and backends.
Backends (content store, snapshotters) register their sweepers on the scheduler at init."""

from dataclasses import dataclass

from pycontainerd.gc_scheduler import Scheduler
from pycontainerd.plugin import PluginType, Registration


@dataclass
class Config:
    pause_threshold: float = 0.02
    """Most of the daemon's time collections may take: a scheduled collection waits until
    the average collection time ÷ this has passed since the last one (containerd's default)."""
    deletion_threshold: int = 0
    """Collect (after ``schedule_delay``) as soon as this many deletes wait; 0: never early."""
    schedule_delay: float = 0.0
    """Least seconds between a delete asking for collection and the collection."""
    startup_delay: float = 0.1
    """Seconds after start-up before the first collection."""


async def init(ic):
    scheduler = Scheduler(
        ic.get_single(PluginType.METADATA),
        schedule_delay=ic.config.schedule_delay,
        startup_delay=ic.config.startup_delay,
        pause_threshold=ic.config.pause_threshold,
        deletion_threshold=ic.config.deletion_threshold,
    )
    scheduler.start()
    return scheduler


registration = Registration(
    type=PluginType.GC, id="scheduler", requires=(PluginType.METADATA,), config=Config, init=init,
    close=Scheduler.close,
)
