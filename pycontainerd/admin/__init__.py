"""Administration tools that work on a daemon's state directly, without the gRPC API.

:mod:`.check` is the consistency checker behind ``pyctr admin check``: its checks, over what
:mod:`.loaders` reads (the LMDB environments, blob files, bundles) and :mod:`.probes` finds
in ``/proc`` (the daemon's lock, mounts, shims).
"""
