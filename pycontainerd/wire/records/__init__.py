"""Records ⇄ the protobuf messages of containerd's v1 services, one module per service
(:mod:`.containers`, :mod:`.images`, :mod:`.leases`, :mod:`.namespaces`, :mod:`.snapshots`,
:mod:`.content`): a servicer or a client command loads the generated modules of the
services it serves or calls, no others."""
