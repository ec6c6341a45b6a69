"""``io.containerd.grpc.v1.events``: the Events gRPC service over the exchange."""

from pycontainerd.plugin import PluginType, Registration
from pycontainerd.services.events import EventsServicer

registration = Registration(
    type=PluginType.GRPC,
    id="events",
    requires=(PluginType.EVENT,),
    init=lambda ic: EventsServicer(ic.get_single(PluginType.EVENT)),
)
