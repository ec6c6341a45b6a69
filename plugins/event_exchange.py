"""``io.containerd.event.v1.exchange``: in-process publish/subscribe of events."""

from pycontainerd.events.exchange import Exchange
from pycontainerd.plugin import PluginType, Registration

registration = Registration(type=PluginType.EVENT, id="exchange", init=lambda ic: Exchange())
