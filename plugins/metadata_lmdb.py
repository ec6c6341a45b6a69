"""``io.containerd.metadata.v1.lmdb``: the namespaced LMDB metadata database."""

from dataclasses import dataclass

from pycontainerd.metadata.db import DEFAULT_MAP_SIZE, MetadataDB
from pycontainerd.plugin import PluginType, Registration


@dataclass
class Config:
    map_size: int = DEFAULT_MAP_SIZE
    """Bytes of address space LMDB may map; the file only grows as data is written."""


def init(ic):
    db = MetadataDB(ic.root, map_size=ic.config.map_size)
    ic.plugin.exports["root"] = str(ic.root)
    ic.plugin.exports["schema"] = str(db.schema_version)
    return db


registration = Registration(
    type=PluginType.METADATA, id="lmdb", init=init, config=Config, close=MetadataDB.close
)
