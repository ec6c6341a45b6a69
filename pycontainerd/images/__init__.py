"""Images, core side: pull (fetch into a content store, record) and unpack (layers into
snapshots), written once against small protocols (:mod:`.pull`) that both the client
library (over gRPC) and the CRI plugin (over the daemon's in-process services) fulfil, as
containerd's ``client/pull.go`` and ``core/unpack`` serve its client and its CRI alike."""
