"""The one translation layer between the core and containerd's gRPC API, shared by the
servicers (:mod:`pycontainerd.services`), the client library, the CRI plugin and the runtime:

* :mod:`.convert` — descriptors, timestamps, mounts;
* :mod:`.records` — record ⇄ protobuf for containers, images, leases, namespaces, snapshot
  and content infos (the records themselves are :mod:`pycontainerd.records`);
* :mod:`.errors` — core errors ⇄ gRPC status codes, in one table.

Only :mod:`.errors` imports ``grpc``; nothing here imports ``lmdb``.
"""
