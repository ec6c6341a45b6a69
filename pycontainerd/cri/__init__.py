"""Kubernetes' Container Runtime Interface (``runtime.v1``) for pycontainerd: the plugin
``io.containerd.grpc.v1.cri`` serves ``runtime.v1.RuntimeService`` and
``runtime.v1.ImageService`` on the daemon's socket (DESIGN §5 CRI).

Layout (containerd's ``internal/cri``, one module per call)::

    config.py     [plugins."io.containerd.grpc.v1.cri"] (containerd's config v2 keys)
    state.py      the sandbox and container state machines (Enum + transition table)
    store.py      in-memory sandboxes/containers: metadata (in the containerd record) + status file
    filters.py    the CRI list filters
    spec.py       OCI specs for the pause container and for containers
    cni.py        CNI plugins run per the CNI spec (ADD/DEL/CHECK, result cache)
    netns.py      pinned network namespaces, created and read with pyroute2
    registry.py   registry hosts (certs.d/hosts.toml) and CRI auth for pulls
    logs.py       fifo → CRI log format copying, ExecSync capture
    daemon.py     the one seam to the daemon: its in-process services (containers, images,
                  content, leases, snapshots, diff, tasks, events), namespace k8s.io
    service.py    CRIService, the core every call shares (stores, paths, CRI events); no gRPC
    host.py       CRIHost, what exits, recovery and image volumes need of CRIService (a protocol)
    images.py     images resolved for this host, local lookup, pull (pycontainerd.images' puller in-process)
    exits.py      task exits and OOMs from one subscription to the event exchange
    recovery.py   the previous run's sandboxes and containers, rebuilt once at plugin init
    convert.py    PodSandboxStatus / ContainerStatus and cgroup figures as CRI messages
    handlers/     one module per RPC: sandbox_run.py, container_start.py, image_pull.py, …
    servicer.py   the thin gRPC layer (one line per RPC)
    streaming/    the streaming server behind Exec/Attach/PortForward URLs (SPDY/3.1, WebSocket)

Everything CRI makes lives in containerd namespace ``k8s.io`` and is visible through the
containerd API: images under their reference, repo digest and id (label
``io.cri-containerd.image=managed``), sandboxes and containers as container records
labelled ``io.cri-containerd.kind`` with their CRI metadata in an extension, tasks, snapshots.

What is not here yet: checkpointing, a self-signed certificate for ``enable_tls_streaming``
(the key pair must be configured), user namespaces and id-mapped mounts, image volume mounts, the systemd cgroup
driver (refused with a clear error), AppArmor (a Localhost profile is refused when AppArmor
is off), SELinux labels.
"""
