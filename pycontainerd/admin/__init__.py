"""Administration tools that work on a daemon's state directly, without the gRPC API.

:mod:`.check` is the consistency checker behind ``pyctr admin check``.
"""
