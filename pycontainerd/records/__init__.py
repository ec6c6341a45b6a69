"""The plain record types of the metadata store: what a container, image, lease and
namespace *are*, apart from the LMDB code that stores them (:mod:`pycontainerd.metadata`) and
the protobuf messages that carry them (:mod:`pycontainerd.wire`). Nothing here imports
``lmdb`` or ``grpc``, so the client library loads without either; snapshot records live in
:mod:`pycontainerd.snapshots.types`, content ones in :mod:`pycontainerd.content`."""
