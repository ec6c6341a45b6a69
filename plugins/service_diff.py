"""``io.containerd.service.v1.diff-service``: picks the differ (containerd's ``default``
list: the first that loaded serves)."""

from dataclasses import dataclass, field

from pycontainerd.errdefs import FailedPrecondition
from pycontainerd.plugin import PluginType, Registration


@dataclass
class Config:
    default: list[str] = field(default_factory=lambda: ["walking"])
    """Differ plugin ids in order of preference."""


def init(ic):
    differs = ic.get_all(PluginType.DIFF)
    for name in ic.config.default:
        if name in differs:
            return differs[name]
    raise FailedPrecondition(f"none of the differs {ic.config.default} loaded")


registration = Registration(
    type=PluginType.SERVICE, id="diff-service", requires=(PluginType.DIFF,), config=Config, init=init
)
